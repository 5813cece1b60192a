"""Retrieval-layer benchmark: grouping time, indexing throughput (paragraphs/s) and query latency
(p50/p95, one query at a time) for BM25 and dense MaxP, with ratios taken in the same run:
exact MaxP with numpy `reduceat` vs a per-unit Python loop, and numpy vs faiss dense search.

    python bench/bench_retrieval.py [--dense-docs 2000] [--queries 200] [--json out.json]

Uses the HotpotQA paragraph union when SOLSTICE_DATA holds it (the corpus of the LongRAG
experiment), else a synthetic corpus of the same size. Prints one table; numbers depend on the
machine and its load (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def corpus_and_queries(n_queries: int):
    from solstice.retrieval.documents import Corpus, Document

    root = Path(os.environ.get("SOLSTICE_DATA", "")) / "hotpotqa"
    ircot = root / "hotpotqa_dev_subsampled_500_ircot_format.jsonl"
    if ircot.is_file():
        from solstice.papers.longrag.data import hotpot_corpus_and_questions

        corpus, qs = hotpot_corpus_and_questions(ircot, root / "hotpotqa_dev_500_original_format_amor.jsonl")
        return corpus, [q.text for q in qs][:n_queries], "HotpotQA union (9,339 paragraphs)"
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(20000)]
    docs = [Document(f"d{i}", " ".join(rng.choice(vocab, size=int(rng.integers(40, 160)))), f"T{i}")
            for i in range(9339)]
    queries = [" ".join(rng.choice(vocab, size=8)) for _ in range(n_queries)]
    return Corpus(docs), queries, "synthetic (9,339 paragraphs)"


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


def latency(index, queries) -> tuple[float, float]:
    index.search(["a warm-up query that is not timed"], k=8)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search([q], k=8)
        times.append(time.perf_counter() - t0)
    return pct(times, 50), pct(times, 95)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dense-docs", type=int, default=2000, help="paragraphs encoded for the dense numbers")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from solstice.retrieval.adjacency import mention_adjacency
    from solstice.retrieval.documents import Corpus
    from solstice.retrieval.grouping import group_documents, passage_grouping
    from solstice.retrieval.index import UnitIndex
    from solstice.retrieval.tokens import get_counter

    corpus, queries, what = corpus_and_queries(args.queries)
    res: dict[str, float | str] = {"corpus": what, "threads": os.environ.get("OMP_NUM_THREADS", "all"),
                                   "load_avg_1min": os.getloadavg()[0]}
    counter = get_counter("minilm")
    t0 = time.perf_counter()
    sizes = dict(zip(corpus.ids, counter.count_many([d.render() for d in corpus])))
    res["count_tokens_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    adj = mention_adjacency(corpus)
    res["mention_adjacency_s"] = time.perf_counter() - t0
    for cap in (1000, 4000):
        t0 = time.perf_counter()
        g = group_documents(corpus, adj, max_tokens=cap, sizes=sizes)
        res[f"group_{cap}_s"] = time.perf_counter() - t0
    units4k = g.units
    passages = passage_grouping(corpus, sizes=sizes).units

    t0 = time.perf_counter()
    bm = UnitIndex.build(passages, backend="bm25", counter=counter)
    res["bm25_index_paragraphs_per_s"] = len(passages) / (time.perf_counter() - t0)
    res["bm25_p50_ms"], res["bm25_p95_ms"] = latency(bm, queries)
    bmu = UnitIndex.build(units4k, backend="bm25", counter=counter)
    res["bm25_units4k_p50_ms"], res["bm25_units4k_p95_ms"] = latency(bmu, queries)

    # exact MaxP: vectorised reduceat vs a per-unit loop over the same chunk scores
    cs = bmu.chunk_scores(queries[:50])
    t0 = time.perf_counter()
    fast = np.maximum.reduceat(cs, bmu._starts, axis=1)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    owner = bmu._owner
    slow = np.stack([cs[:, owner == u].max(axis=1) for u in range(len(bmu.units))], axis=1)
    t_slow = time.perf_counter() - t0
    assert np.allclose(fast, slow)
    res["maxp_reduceat_vs_loop_speedup"] = t_slow / max(t_fast, 1e-9)

    sub = Corpus(list(corpus)[: args.dense_docs])
    sub_units = passage_grouping(sub, sizes={d.id: sizes[d.id] for d in sub}).units
    from solstice.retrieval.encoders import load_encoder

    t0 = time.perf_counter()
    enc = load_encoder("minilm")
    res["encoder_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dn = UnitIndex.build(sub_units, backend="dense", counter=counter, encoder=enc)
    res["dense_index_paragraphs_per_s"] = len(sub_units) / (time.perf_counter() - t0)
    enc._cache.clear()
    dn.scorer.encoder = enc
    res["dense_numpy_p50_ms"], res["dense_numpy_p95_ms"] = latency(dn, queries)
    fa = UnitIndex(dn.units, dn.chunks, type(dn.scorer)(enc, dn.scorer.emb, "faiss"), dn.info)
    enc._cache.clear()
    res["dense_faiss_p50_ms"], res["dense_faiss_p95_ms"] = latency(fa, queries)
    res["dense_docs"] = len(sub_units)

    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
