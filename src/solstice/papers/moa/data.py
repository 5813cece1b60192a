"""MoA data: the shipped LongEval prompts (parity), in-project LongEval "lines", passkey and copy
tasks (seeded), WikiText-103 articles for calibration and validation."""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.data.catalogue import WIKITEXT103_TEST
from solstice.data.sources import DataSource
from solstice.errors import DataError

WIKITEXT = WIKITEXT103_TEST

LINES = DataSource(
    name="longeval-lines", path="longeval-lines/longeval_lines_70_lines.jsonl",
    license="MIT", description="100 LongEval 'lines' prompts from the MoA repository (70 lines each)")

# LongEval "lines" template (prompt wording as in the LongEval benchmark; our own word lists).
LINES_HEAD = (
    "Below is a record of lines I want you to remember. Each line begins with 'line <line index>' and contains a "
    "'<REGISTER_CONTENT>' at the end of the line as a numerical value. For each line index, memorize its "
    "corresponding <REGISTER_CONTENT>. At the end of the record, I will ask you to retrieve the corresponding "
    "<REGISTER_CONTENT> of a certain line index. Now the record start:\n\n")
LINE = "line {key}: REGISTER_CONTENT is <{value}>\n"
LINES_TAIL = ("\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line {key}? I need the number.")

ADJECTIVES = (
    "amber brave calm dusty eager faint gentle hollow icy jolly keen lively mellow noisy odd proud quiet rapid "
    "rusty shy silent sleepy smooth sour steady sunny swift tame tidy vast velvet warm wary wild witty young "
    "zesty bold bright cosy crisp").split()
NOUNS = (
    "anchor badger barrel beacon cactus candle castle cobbler comet cottage crayon dolphin engine falcon feather "
    "fiddle garden glacier hammer harbor helmet island jacket kettle ladder lantern meadow mirror needle orchard "
    "otter paddle parrot pepper pillow planet pocket quarry rabbit saddle spoon tunnel violin wagon walnut").split()

PASSKEY_HEAD = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
                "I will quiz you about the important information there.\n\n")
PASSKEY_FILL = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
PASSKEY_NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key. "
PASSKEY_TAIL = "\nWhat is the pass key? Answer with the number only."

_INT = re.compile(r"\d+")


def first_int(text: str) -> int | None:
    """The answer: the first integer in the text (LongEval scoring)."""
    m = _INT.search(text)
    return int(m.group(0)) if m else None


def load_shipped_lines(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not rows or not {"prompt", "expected_number", "random_idx"} <= set(rows[0]):
        raise DataError(f"{path}: not the LongEval lines file (needs prompt, expected_number, random_idx)")
    return rows


def shipped_parity(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Data facts checked against our template: every prompt has num_lines lines, the asked key's
    line holds expected_number, and our template reproduces the prompt's head and tail exactly."""
    ok_value = ok_lines = ok_template = 0
    for r in rows:
        key, _idx = r["random_idx"]
        p = r["prompt"]
        lines = re.findall(r"line ([^:\n]+): REGISTER_CONTENT is <(\d+)>", p)
        ok_lines += len(lines) == r["num_lines"]
        ok_value += dict(lines).get(key) == str(r["expected_number"])
        ok_template += p.startswith(LINES_HEAD) and p.endswith(LINES_TAIL.format(key=key))
    n = len(rows)
    return {"n": n, "value_matches": ok_value / n, "line_counts": ok_lines / n, "template_matches": ok_template / n}


@dataclass(frozen=True)
class Retrieval:
    id: str
    prompt: str
    answer: int
    depth: float            # needle position as a fraction of the record
    target_tokens: int


def make_lines(count_tokens: Any, target_tokens: int, n: int, seed: int) -> list[Retrieval]:
    """Seeded LongEval-style prompts of about `target_tokens` tokens (the target tokenizer), the asked
    line at binned depths (n items spread evenly over 10 depth bins)."""
    rng = random.Random(seed * 7919 + target_tokens)
    keys = [f"{a}-{b}" for a in ADJECTIVES for b in NOUNS]
    per_line = max(1, count_tokens(LINE.format(key="brave-otter", value=12345)))
    n_lines = max(4, (target_tokens - count_tokens(LINES_HEAD + LINES_TAIL.format(key="brave-otter"))) // per_line)
    out = []
    for i in range(n):
        chosen = rng.sample(keys, n_lines)
        values = [rng.randint(10000, 99999) for _ in chosen]
        bin_ = i % 10
        pos = min(n_lines - 1, int((bin_ + rng.random()) / 10 * n_lines))
        body = "".join(LINE.format(key=k, value=v) for k, v in zip(chosen, values))
        prompt = LINES_HEAD + body + LINES_TAIL.format(key=chosen[pos])
        out.append(Retrieval(f"lines-{target_tokens}-{i}", prompt, values[pos], pos / n_lines, target_tokens))
    return out


def make_passkey(count_tokens: Any, target_tokens: int, n: int, seed: int) -> list[Retrieval]:
    """Seeded passkey prompts of about `target_tokens` tokens, needle depth in 10 bins."""
    rng = random.Random(seed * 104729 + target_tokens)
    fill_tokens = max(1, count_tokens(PASSKEY_FILL))
    reps = max(2, (target_tokens - count_tokens(PASSKEY_HEAD + PASSKEY_TAIL) - 30) // fill_tokens)
    out = []
    for i in range(n):
        key = rng.randint(10000, 99999)
        depth = ((i % 10) + rng.random()) / 10
        at = int(depth * reps)
        text = PASSKEY_FILL * at + PASSKEY_NEEDLE.format(key=key) + PASSKEY_FILL * (reps - at)
        out.append(Retrieval(f"passkey-{target_tokens}-{i}", PASSKEY_HEAD + text + PASSKEY_TAIL, key, depth,
                             target_tokens))
    return out


def copy_sequence(vocab_lo: int, vocab_hi: int, d: int, seed: int) -> list[int]:
    """A random token block R of length d followed by R again (loss is read on the second copy)."""
    rng = random.Random(seed * 31337 + d)
    block = [rng.randrange(vocab_lo, vocab_hi) for _ in range(d)]
    return block + block


def load_articles(path: Path) -> list[str]:
    """WikiText-103 test articles (one CSV row each, no header)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r[0] for r in csv.reader(f) if r and r[0].strip()]
    if not rows:
        raise DataError(f"{path}: no articles")
    return rows


def bucket(lengths: list[int], lo: int, hi: int) -> list[int]:
    """Indices of items whose token length lies in (lo, hi]; an empty bucket is a one-line error."""
    idx = [i for i, n in enumerate(lengths) if lo < n <= hi]
    if not idx:
        raise DataError(f"no calibration item has a token length in ({lo}, {hi}] with the target model's "
                        "tokenizer; use other profile lengths or longer documents")
    return idx
