"""Rank fusion: reciprocal rank fusion (Cormack, Clarke & Büttcher 2009) of several rankings."""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hashable]], *, k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[Hashable, float]]:
    """score(d) = Σ_q w_q / (k + rank_q(d)), ranks 1-based; an item repeated inside one ranking
    counts at its first rank. Sorted by score, ties by the earliest best rank, then first appearance."""
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[Hashable, float] = {}
    best: dict[Hashable, int] = {}
    for qi, ranking in enumerate(rankings):
        w = 1.0 if weights is None else float(weights[qi])
        seen: set = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
            best[item] = min(best.get(item, rank), rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], order[kv[0]]))
