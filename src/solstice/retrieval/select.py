"""Choosing how much of a ranking to keep: the top k units, or units in rank order within a token
budget (LongRAG §3: passages need ~100–200 units, grouped units 4–8; a budget makes arms with
different unit sizes comparable)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from solstice.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Selection:
    """The kept items, their total tokens, and whether the first item alone exceeded the budget."""

    items: list
    n_tokens: int
    truncated: bool = False
    skipped: int = 0


def select(
    ranked: Sequence[T],
    tokens: Mapping[str, int] | Callable[[T], int],
    *,
    k: int | None = None,
    budget: int | None = None,
    fill: str = "stop",
    key: Callable[[T], str] | None = None,
) -> Selection:
    """Keep the top `k` items, or items in rank order while their tokens stay within `budget`.

    With a budget, the first item is kept even when it alone exceeds it (`truncated=True`: the
    reader must cut it). `fill="stop"` ends at the first item that does not fit (the paper);
    `fill="skip"` skips it and keeps looking. `k` and `budget` may be combined.
    """
    if k is None and budget is None:
        raise ConfigError("select needs k, budget, or both")
    if k is not None and k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if budget is not None and budget < 1:
        raise ConfigError(f"budget must be at least 1 token, got {budget}")
    if fill not in ("stop", "skip"):
        raise ConfigError(f"fill must be 'stop' or 'skip', got '{fill}'")

    def size(x: T) -> int:
        if callable(tokens):
            return int(tokens(x))
        name = key(x) if key else getattr(x, "unit_id", getattr(x, "id", x))
        return int(tokens[name])  # type: ignore[index]

    kept: list[T] = []
    total, skipped, truncated = 0, 0, False
    for x in ranked:
        if k is not None and len(kept) >= k:
            break
        n = size(x)
        if budget is not None and total + n > budget:
            if not kept:
                kept.append(x)
                total += n
                truncated = True
                if fill == "stop":
                    break
                continue
            if fill == "stop":
                break
            skipped += 1
            continue
        kept.append(x)
        total += n
    return Selection(kept, total, truncated, skipped)
