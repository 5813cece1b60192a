"""Reading the model's answer and scoring it (LongIns §3.3; reference eval.py).

Two parsers:
- `parse_upstream`: the reference rule — every non-greedy `[...]` span on one line, every integer
  inside each span, union. Echoed item headers (`[3:`), years and code count as predictions.
- `parse_strict`: ours — only bracket groups holding nothing but integers, commas and spaces; when
  the text has an `Answer:` we read after the last one (falling back to the whole text when that
  part has no group); `[]` is an explicit "none"; no group at all is a parse failure.

Two F1 rules per sample (gold = the indices of the wrongly answered items):
- `f1_reference`: P = TP/|pred|, R = TP/|gold|; 0 when pred or gold is empty or TP = 0. Samples
  without items enter the mean as 0.
- `f1_fixed`: the same for samples with wrong items; a sample with items but no wrong item scores 1
  for an explicit empty answer and 0 otherwise; a sample without items is unscorable (None).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_UPSTREAM_SPAN = re.compile(r"\[(.*?)\]")
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_STRICT_BODY = re.compile(r"^[\d,\s]*$")
_ANSWER = re.compile(r"answer\s*:", re.I)


@dataclass(frozen=True)
class Parsed:
    indices: frozenset[int]
    ok: bool


def parse_upstream(response: str) -> frozenset[int]:
    """The reference parser (eval.py): integers inside every `[...]` span, union."""
    out: set[int] = set()
    for span in set(_UPSTREAM_SPAN.findall(response)):
        out.update(int(x) for x in re.findall(r"\d+", span))
    return frozenset(out)


def _strict_groups(text: str) -> list[frozenset[int]]:
    groups = []
    for body in _GROUP.findall(text):
        if _STRICT_BODY.match(body):
            groups.append(frozenset(int(x) for x in re.findall(r"\d+", body)))
    return groups


def parse_strict(response: str) -> Parsed:
    """Our parser: bracket groups of integers only, read after the last `Answer:` when present."""
    marks = list(_ANSWER.finditer(response))
    groups = _strict_groups(response[marks[-1].end():]) if marks else []
    if not groups:
        groups = _strict_groups(response)
    if not groups:
        return Parsed(frozenset(), False)
    return Parsed(frozenset().union(*groups), True)


def f1_reference(pred: Iterable[int], gold: Iterable[int]) -> float:
    """Per-sample F1 as eval.py computes it."""
    p, g = set(pred), set(gold)
    tp = len(p & g)
    if not p or not g or tp == 0:
        return 0.0
    prec, rec = tp / len(p), tp / len(g)
    return 2 * prec * rec / (prec + rec)


def f1_fixed(parsed: Parsed, gold: Iterable[int], n_items: int) -> float | None:
    """Our per-sample F1: None for a sample without items; an item-bearing sample without wrong items
    scores 1 for an explicit empty answer (`[]`)."""
    if n_items == 0:
        return None
    g = set(gold)
    if not g:
        return 1.0 if parsed.ok and not parsed.indices else 0.0
    return f1_reference(parsed.indices, g)


def bracket(indices: Iterable[int]) -> str:
    return "[" + ", ".join(str(i) for i in sorted(indices)) + "]"


# -- model-free predictors ----------------------------------------------------------------------
def oracle_response(gold: Sequence[int], n_items: int) -> str:
    return bracket(gold)


def all_indices_response(gold: Sequence[int], n_items: int) -> str:
    return bracket(range(n_items))


def first_only_response(gold: Sequence[int], n_items: int) -> str:
    return "[0]" if n_items else "[]"


def random_response(n_items: int, q: float, rng: random.Random) -> str:
    return bracket(i for i in range(n_items) if rng.random() < q)


def expected_random_f1(n_items: int, n_gold: int, q: float) -> float:
    """E[F1] when each of `n_items` numbers is flagged independently with probability q."""
    if n_gold == 0 or n_items == 0:
        return 0.0
    n_bad = n_items - n_gold

    def pmf(k: int, n: int) -> float:
        return math.comb(n, k) * q**k * (1 - q) ** (n - k)

    total = 0.0
    for a in range(1, n_gold + 1):
        pa = pmf(a, n_gold)
        for b in range(0, n_bad + 1):
            total += pa * pmf(b, n_bad) * (2 * a / (a + b + n_gold))
    return total
