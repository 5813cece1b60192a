"""Fitting retrieved texts into a reader's context window.

`fit_context(texts, build, count, limit)` keeps the longest prefix of the ranked texts whose
prompt `build(kept)` counts at most `limit` tokens; when even the first text alone is too long it
is cut (by characters, found with a binary search on the token count). The result says how many
texts were dropped and whether one was cut, so that callers can warn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from solstice.errors import ConfigError


@dataclass(frozen=True)
class FittedContext:
    texts: list[str]
    prompt: object
    n_tokens: int
    dropped: int
    cut: bool


def fit_context(
    texts: Sequence[str],
    build: Callable[[list[str]], object],
    count: Callable[[object], int],
    limit: int,
) -> FittedContext:
    """The longest prefix of `texts` whose prompt fits `limit` tokens (see module docstring)."""
    if limit < 1:
        raise ConfigError(f"context limit must be positive, got {limit}")
    texts = list(texts)
    empty = build([])
    if count(empty) > limit:
        raise ConfigError(f"the prompt without any context needs {count(empty)} tokens, more than the {limit} available")
    # binary search on the number of texts kept (prompt length grows with it)
    lo, hi = 0, len(texts)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(build(texts[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    if lo > 0 or not texts:
        p = build(texts[:lo])
        return FittedContext(texts[:lo], p, count(p), len(texts) - lo, False)
    first = texts[0]
    a, b = 0, len(first)
    while a < b:
        mid = (a + b + 1) // 2
        if count(build([first[:mid]])) <= limit:
            a = mid
        else:
            b = mid - 1
    cut = first[:a]
    p = build([cut] if cut else [])
    return FittedContext([cut] if cut else [], p, count(p), len(texts) - 1, True)
