"""BBH tasks: loading through the data layer, seeded val/test splits disjoint by normalised input,
closed label sets, majority-class rates and the 13-gram contamination check."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solstice.errors import ConfigError, DataError

DESCRIPTIONS = {
    "boolean_expressions": "Evaluate the result of a random Boolean expression.",
    "sports_understanding": "Determine whether an artificially constructed sentence relating to sports is plausible or not.",
    "web_of_lies": "Evaluate a random boolean function expressed as a word problem.",
    "navigate": "Given a series of navigation instructions, determine whether one would end up back at the starting point.",
    "causal_judgement": "Answer questions about causal attribution.",
}


@dataclass
class Item:
    input: str
    target: str


@dataclass
class Task:
    name: str
    description: str
    labels: list[str]
    val: list[Item]
    test: list[Item]
    seeds: list[Item] = field(default_factory=list)  # seed questions for the teacher

    def majority(self) -> tuple[str, float]:
        """The most common test label and its rate (the majority-class baseline)."""
        c = Counter(it.target for it in self.test)
        lab, n = max(sorted(c.items()), key=lambda kv: kv[1])
        return lab, n / len(self.test)


def norm_input(s: str) -> str:
    return " ".join(s.lower().split())


def load_items(path: Path) -> list[Item]:
    if not path.is_file():
        raise DataError(f"BBH task file '{path}' does not exist")
    data = json.loads(path.read_text())
    if "examples" not in data:
        raise DataError(f"'{path}' has no 'examples' list")
    return [Item(str(e["input"]), str(e["target"])) for e in data["examples"]]


def split(items: Sequence[Item], n_val: int, n_test: int, seed: int) -> tuple[list[Item], list[Item]]:
    """Seeded val/test subsets, disjoint by normalised input (duplicates of one input stay together:
    only the first of each input is kept)."""
    import numpy as np

    seen: dict[str, Item] = {}
    for it in items:
        seen.setdefault(norm_input(it.input), it)
    uniq = list(seen.values())
    if n_val + n_test > len(uniq):
        raise ConfigError(f"{n_val} val + {n_test} test items asked, the task has {len(uniq)} distinct inputs")
    order = np.random.default_rng(seed).permutation(len(uniq))
    val = [uniq[int(i)] for i in order[:n_val]]
    test = [uniq[int(i)] for i in order[n_val : n_val + n_test]]
    return val, test


def build_task(name: str, root: Path, *, n_val: int, n_test: int, n_seeds: int, seed: int) -> Task:
    items = load_items(root / "data" / f"{name}.json")
    labels = sorted({it.target for it in items})
    if len(labels) > 10:
        raise ConfigError(f"task '{name}' has {len(labels)} distinct targets; option scoring needs a closed label set")
    val, test = split(items, n_val, n_test, seed)
    # the teacher's seed questions are the first val items (the paper's come from the task's own data)
    return Task(name, DESCRIPTIONS.get(name, name.replace("_", " ")), labels, val, test, val[:n_seeds])


def ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    toks = re.findall(r"\w+|[^\w\s]", text.lower())
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def contaminated(texts: Iterable[str], reference: Iterable[str], n: int = 13) -> list[bool]:
    """For each text: does it share an n-gram (default 13, word/punctuation tokens) with any reference text?"""
    ref: set[tuple[str, ...]] = set()
    for r in reference:
        ref |= ngrams(r, n)
    return [bool(ngrams(t, n) & ref) for t in texts]
