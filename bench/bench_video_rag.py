"""Video library: ingest rate and query latency of BM25 + reciprocal rank fusion (no LLM) over
synthetic libraries of 10K and 100K moments.

Each synthetic video has 50 moments of 25-60 words drawn from a Zipf vocabulary of 30K words (news-like
frequencies); videos are added one at a time to a persistent MomentStore (one index segment per video,
as a user's incremental ingest would), then compacted once, as `compact()` is meant to be run. A query
is a request of 8-14 words plus 5 keyword queries of 5 words (the paper's multi-query shape): 6 BM25
searches at depth 20, fusion, IoU de-duplication and the 50-moment cap. Latency is measured per query
over 200 queries after 10 warm-up queries, before and after compaction.

    python bench/bench_video_rag.py [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from solstice.papers.video_rag.library import Moment, MomentStore  # noqa: E402
from solstice.papers.video_rag.retriever import MomentRetriever  # noqa: E402


def vocabulary(size: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=int(rng.integers(4, 10)))) for _ in range(size)]
    p = 1.0 / np.arange(1, size + 1) ** 1.07
    return words, p / p.sum()


def build(path: Path, n_moments: int, rng: np.random.Generator, words, p) -> tuple[MomentStore, float]:
    store = MomentStore(path)
    per_video = 50
    t0 = time.perf_counter()
    for v in range(n_moments // per_video):
        vid = f"video{v:05d}"
        moments, t = [], 0.0
        for j in range(per_video):
            n = int(rng.integers(25, 61))
            text = " ".join(rng.choice(words, size=n, p=p))
            moments.append(Moment(vid, f"{vid}#{j:04d}", t, t + n / 2.5, text, title=vid))
            t += n / 2.5
        store.add_video(vid, moments)
    return store, time.perf_counter() - t0


def latency(store: MomentStore, rng: np.random.Generator, words, p, n_queries: int) -> np.ndarray:
    r = MomentRetriever(store, per_query_k=20, cap=50)
    out = []
    for i in range(n_queries + 10):
        request = " ".join(rng.choice(words, size=int(rng.integers(8, 15)), p=p))
        queries = [" ".join(rng.choice(words[:5000], size=5)) for _ in range(5)]
        t0 = time.perf_counter()
        r.retrieve(request, queries)
        if i >= 10:
            out.append(time.perf_counter() - t0)
    return np.asarray(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    words, p = vocabulary(30_000, rng)
    print("| moments | ingest moments/s | segments | p50 ms | p95 ms | p50 ms compacted | p95 ms compacted |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(dir=ROOT) as d:
            store, secs = build(Path(d) / "store", size, rng, words, p)
            segs = len(store.index.segments)
            lat = latency(store, rng, words, p, args.queries)
            store.index.compact()
            reopened = MomentStore(Path(d) / "store")
            lat_c = latency(reopened, rng, words, p, args.queries)
        print(f"| {size:,} | {size / secs:,.0f} | {segs} | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 95):.1f} | "
              f"{np.percentile(lat_c, 50):.1f} | {np.percentile(lat_c, 95):.1f} |", flush=True)


if __name__ == "__main__":
    main()
