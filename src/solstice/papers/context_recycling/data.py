"""Long contexts split into titled paragraphs with gold supporting paragraphs: HotpotQA distractor
questions (10 paragraphs, 2 gold) and NQ-open multi-document contexts (the gold passage among
other questions' gold passages, at a chosen position)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from solstice.data.catalogue import HOTPOT_IRCOT, NQ_OPEN_ORACLE  # noqa: F401  (shared files, read as D.<name>)
from solstice.data.io import read_jsonl
from solstice.errors import DataError

NQ_ORACLE = NQ_OPEN_ORACLE


@dataclass(frozen=True)
class Paragraph:
    title: str
    text: str

    def key(self) -> str:
        """Content hash: demos generated from a paragraph are reused wherever it appears."""
        return hashlib.sha256(f"{self.title}\n{self.text}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Item:
    """One question over one context. `gold` holds 1-based paragraph ids."""

    id: str
    question: str
    answers: tuple[str, ...]
    paragraphs: tuple[Paragraph, ...]
    gold: tuple[int, ...]

    def context_key(self) -> str:
        h = hashlib.sha256()
        for p in self.paragraphs:
            h.update(p.key().encode())
        return h.hexdigest()[:16]


def hotpot_items(path: Path) -> list[Item]:
    """Questions with exactly two supporting paragraphs among their contexts (the file's 10-paragraph layout)."""
    out = []
    for r in read_jsonl(path):
        paras = tuple(Paragraph(c["title"], " ".join(c["paragraph_text"].split())) for c in r["contexts"])
        gold = tuple(i + 1 for i, c in enumerate(r["contexts"]) if c.get("is_supporting"))
        answers = tuple(s for a in r["answers_objects"] for s in a.get("spans", []) if s)
        if gold and answers:
            out.append(Item(str(r["question_id"]), r["question_text"], answers, paras, gold))
    if not out:
        raise DataError(f"'{path}' holds no HotpotQA questions with supporting paragraphs")
    return out


def nq_pool(path: Path) -> list[tuple[str, tuple[str, ...], Paragraph]]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            c = r["ctxs"][0]
            rows.append((r["question"], tuple(r["answers"]), Paragraph(c["title"], " ".join(c["text"].split()))))
    return rows


def nq_sweep_items(path: Path, n: int, n_docs: int, positions: list[int], seed: int) -> list[list[Item]]:
    """For `n` questions (seeded), one context of `n_docs` passages (the gold plus other questions'
    gold passages) and its variants with the gold moved to each position; distractors keep their
    relative order. Returns one list of items (one per position) per question."""
    pool = nq_pool(path)
    rng = random.Random(seed)
    picks = rng.sample(range(len(pool)), min(n, len(pool)))
    out = []
    for qi in picks:
        q, answers, gold = pool[qi]
        others = [pool[j][2] for j in rng.sample(range(len(pool)), n_docs + 5) if j != qi]
        others = [p for p in others if p.text != gold.text][: n_docs - 1]
        variants = []
        for pos in positions:
            if not 1 <= pos <= n_docs:
                raise DataError(f"gold position {pos} is outside 1..{n_docs}")
            paras = others[: pos - 1] + [gold] + others[pos - 1:]
            variants.append(Item(f"nq{qi}@{pos}", q, answers, tuple(paras), (pos,)))
        out.append(variants)
    return out
