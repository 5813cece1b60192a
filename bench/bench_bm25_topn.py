"""BM25 top-N MaxP at scale: query latency (p50/p95, one query at a time) and peak memory on a
synthetic corpus of 1,000,000 chunks (100,000 units x 10 chunks, ~30 Zipf-distributed words each),
and, on a 10,000-chunk sample, the top-N search checked equal to exact MaxP over all chunks
(same units in the same order for every query and k).

    python bench/bench_bm25_topn.py [--chunks 1000000] [--queries 200] [--json out.json]

Targets: p95 < 50 ms per query, peak RSS < 4 GB, top-N == exact. Wall-clock numbers depend on the
machine and its load: both wall and process-CPU times are printed, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np


def synthetic(n_chunks: int, per_unit: int, seed: int = 0):
    from solstice.retrieval.chunking import Chunk
    from solstice.retrieval.documents import Unit

    rng = np.random.default_rng(seed)
    vocab = np.array([f"t{i}" for i in range(50_000)])
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks ** 1.1
    p /= p.sum()
    words = rng.choice(len(vocab), size=(n_chunks, 30), p=p)
    texts = [" ".join(vocab[row]) for row in words]
    del words
    units, chunks = [], []
    for u in range(n_chunks // per_unit):
        parts = texts[u * per_unit:(u + 1) * per_unit]
        pos = 0
        for t in parts:
            chunks.append(Chunk(u, pos, pos + len(t), 30))
            pos += len(t) + 1
        units.append(Unit(f"u{u}", (f"d{u}",), (f"T{u}",), " ".join(parts), 30 * per_unit))
    queries = [" ".join(vocab[row]) for row in rng.choice(len(vocab), size=(400, 5), p=p)]
    return units, chunks, texts, queries


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    from solstice.retrieval.index import BM25Scorer, UnitIndex

    res: dict[str, float | str | bool] = {"load_avg_1min_start": os.getloadavg()[0], "chunks": a.chunks}
    # exactness on a 10K-chunk sample
    units, chunks, texts, queries = synthetic(10_000, 10, seed=1)
    small = UnitIndex(units, chunks, BM25Scorer.build(texts, stemmer=None), {})
    same = True
    for k in (1, 8, 100):
        fast = small.search(queries[: a.queries], k=k)
        exact = small._search_exact(queries[: a.queries], k)
        same &= all([h.unit_id for h in f] == [h.unit_id for h in e] for f, e in zip(fast, exact))
    res["sample_10k_topn_equals_exact"] = same
    del small, units, chunks, texts
    # scale
    t0 = time.perf_counter()
    units, chunks, texts, queries = synthetic(a.chunks, 10, seed=0)
    res["corpus_build_s"] = round(time.perf_counter() - t0, 1)
    t0, c0 = time.perf_counter(), time.process_time()
    idx = UnitIndex(units, chunks, BM25Scorer.build(texts, stemmer=None), {})
    res["index_s"], res["index_s_cpu"] = round(time.perf_counter() - t0, 1), round(time.process_time() - c0, 1)
    del texts
    res["rss_after_index_mb"] = round(peak_rss_mb(), 0)
    idx.search(["warm up"], k=8)
    wall, cpu = [], []
    for q in queries[: a.queries]:
        t, c = time.perf_counter(), time.process_time()
        idx.search([q], k=8)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    for name, xs in (("", wall), ("_cpu", cpu)):
        res[f"query_p50_ms{name}"] = round(float(np.percentile(xs, 50)) * 1000, 2)
        res[f"query_p95_ms{name}"] = round(float(np.percentile(xs, 95)) * 1000, 2)
    res["peak_rss_mb"] = round(peak_rss_mb(), 0)
    res["load_avg_1min_end"] = os.getloadavg()[0]
    res["targets_met"] = bool(same and res["query_p95_ms"] < 50 and res["peak_rss_mb"] < 4096)
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
