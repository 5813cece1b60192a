"""Retrieval-side and reader-side evaluation of a document order against reader-preference labels.

For one question, `labels[i]` is the `Preference` of candidate i (retriever order) and `order` a
permutation of the candidates (best first). Reader-helpful = ALIGNED.
"""

from __future__ import annotations

from collections.abc import Sequence

from solstice.metrics.retrieval import ndcg_at_k, reciprocal_rank
from solstice.retrieval.preferences import Preference


def helpful(labels: Sequence[int]) -> set[int]:
    return {i for i, p in enumerate(labels) if Preference(p) is Preference.ALIGNED}


def hit_at(order: Sequence[int], labels: Sequence[int], k: int) -> float:
    """1 when a reader-helpful document is among the first k of `order`."""
    good = helpful(labels)
    return float(any(i in good for i in order[:k]))


def mrr(order: Sequence[int], labels: Sequence[int]) -> float:
    return reciprocal_rank([str(i) for i in order], {str(i) for i in helpful(labels)})


def ndcg(order: Sequence[int], labels: Sequence[int], k: int) -> float:
    """Graded: aligned 2, both-correct 1, otherwise 0 (`Preference.gain`)."""
    gains = {str(i): float(Preference(p).gain) for i, p in enumerate(labels)}
    return ndcg_at_k([str(i) for i in order], gains, k)


def order_from_scores(scores: Sequence[float]) -> list[int]:
    """Indices by descending score, ties in retriever order."""
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
