"""Moment retrieval (paper §3): several keyword queries, BM25 per query (+ an optional dense arm),
reciprocal rank fusion that always includes the raw request, IoU de-duplication of overlapping
moments of one video, the 50-moment cap, and a token budget for the answer prompt."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from solstice.papers.video_rag.library import Moment, MomentStore
from solstice.papers.video_rag.timecode import temporal_iou
from solstice.retrieval.fusion import reciprocal_rank_fusion


@dataclass(frozen=True)
class Retrieved:
    position: int  # in the store
    moment: Moment
    score: float  # fused RRF score
    rank: int  # 0-based, after de-duplication


def dedupe_overlaps(ranked: Sequence[tuple[int, float]], moments: Sequence[Moment], *,
                    iou: float = 0.5) -> list[tuple[int, float]]:
    """Drop a moment that overlaps (temporal IoU > `iou`) a better-ranked moment of the same video."""
    kept: list[tuple[int, float]] = []
    by_video: dict[str, list[tuple[float, float]]] = {}
    for pos, score in ranked:
        m = moments[pos]
        spans = by_video.setdefault(m.video_id, [])
        if any(temporal_iou(m.span, s) > iou for s in spans):
            continue
        spans.append(m.span)
        kept.append((pos, score))
    return kept


class MomentRetriever:
    """Fused multi-query retrieval over a MomentStore."""

    def __init__(self, store: MomentStore, *, per_query_k: int = 20, rrf_k: int = 60, cap: int = 50,
                 iou: float = 0.5, dense: Callable[[str, int], list[int]] | None = None,
                 raw_weight: float | None = None) -> None:
        self.store, self.per_query_k, self.rrf_k, self.cap, self.iou = store, per_query_k, rrf_k, cap, iou
        self.dense, self.raw_weight = dense, raw_weight

    def rankings(self, request: str, queries: Sequence[str]) -> list[list[int]]:
        """One BM25 ranking per query, the raw request first (always fused), then the dense arm."""
        qs = list(dict.fromkeys([request, *queries]))
        out = [[p for p, _ in self.store.search(q, self.per_query_k)] for q in qs]
        if self.dense is not None:
            out.append(self.dense(request, self.per_query_k))
        return out

    def weights(self, n_rankings: int) -> list[float]:
        """The raw request's weight in the fusion: `raw_weight`, or (None) as much as all the other
        rankings together, so that keyword queries re-ranking the request's own words cannot outvote it."""
        others = n_rankings - 1
        w = float(max(1, others)) if self.raw_weight is None else float(self.raw_weight)
        return [w] + [1.0] * others

    def retrieve(self, request: str, queries: Sequence[str] = (), *, fuse: bool = True) -> list[Retrieved]:
        rankings = self.rankings(request, queries)
        if fuse:
            fused = reciprocal_rank_fusion(rankings, k=self.rrf_k, weights=self.weights(len(rankings)))
        else:  # plain union in query order (ablation)
            seen: dict[int, float] = {}
            for r in rankings:
                for p in r:
                    seen.setdefault(p, 0.0)
            fused = list(seen.items())
        kept = dedupe_overlaps(fused, self.store.moments, iou=self.iou)[: self.cap]
        return [Retrieved(p, self.store.moments[p], s, i) for i, (p, s) in enumerate(kept)]


def dense_arm(store: MomentStore, encoder) -> Callable[[str, int], list[int]]:
    """A dense ranking function over the store's moments (MiniLM by default), embeddings computed once."""
    emb = encoder.encode_passages([m.document() for m in store.moments])

    def rank(query: str, k: int) -> list[int]:
        s = encoder.encode_queries([query])[0] @ emb.T
        top = np.argsort(-s, kind="stable")[:k]
        return [int(i) for i in top]

    return rank
