"""Retrieval-layer benchmark: grouping time, indexing throughput (paragraphs/s) and query latency
(p50/p95, one query at a time) for BM25 and dense MaxP, with ratios taken in the same run:
exact MaxP with numpy `reduceat` vs a per-unit Python loop, and numpy vs faiss dense search.

    python bench/bench_retrieval.py [--dense-docs 2000] [--queries 200] [--json out.json]

Uses the HotpotQA paragraph union when SOLSTICE_DATA holds it (the corpus of the LongRAG
experiment), else a synthetic corpus of the same size. Prints one table; numbers depend on the
machine and its load: each is given in wall-clock time and in process CPU time (`_cpu`), which a
busy shared machine inflates far less (the load average is printed with them).
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


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def latency(index, queries, res: dict, name: str) -> None:
    index.search(["a warm-up query that is not timed"], k=8)
    wall, cpu = [], []
    for q in queries:
        with Clock() as t:
            index.search([q], k=8)
        wall.append(t.wall)
        cpu.append(t.cpu)
    res[f"{name}_p50_ms"], res[f"{name}_p95_ms"] = pct(wall, 50), pct(wall, 95)
    res[f"{name}_p50_ms_cpu"], res[f"{name}_p95_ms_cpu"] = pct(cpu, 50), pct(cpu, 95)


def timed(res: dict, name: str, fn, per: int | None = None):
    """Run fn; record seconds (or items per second when `per` is given), wall and CPU."""
    with Clock() as t:
        out = fn()
    if per is None:
        res[f"{name}_s"], res[f"{name}_s_cpu"] = t.wall, t.cpu
    else:
        res[f"{name}_per_s"], res[f"{name}_per_s_cpu"] = per / t.wall, per / max(t.cpu, 1e-9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dense-docs", type=int, default=2000, help="paragraphs encoded for the dense numbers")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from solstice.models.tokens import get_counter
    from solstice.retrieval.adjacency import mention_adjacency
    from solstice.retrieval.documents import Corpus
    from solstice.retrieval.grouping import group_documents, passage_grouping
    from solstice.retrieval.index import UnitIndex

    corpus, queries, what = corpus_and_queries(args.queries)
    res: dict[str, float | str] = {"corpus": what, "threads": os.environ.get("OMP_NUM_THREADS", "all"),
                                   "load_avg_1min_start": os.getloadavg()[0]}
    counter = get_counter("minilm")
    docs = [d.render() for d in corpus]
    sizes = dict(zip(corpus.ids, timed(res, "count_tokens", lambda: counter.count_many(docs))))
    adj = timed(res, "mention_adjacency", lambda: mention_adjacency(corpus))
    for cap in (1000, 4000):
        g = timed(res, f"group_{cap}", lambda c=cap: group_documents(corpus, adj, max_tokens=c, sizes=sizes))
    units4k = g.units
    passages = passage_grouping(corpus, sizes=sizes).units

    bm = timed(res, "bm25_index_paragraphs", lambda: UnitIndex.build(passages, backend="bm25", counter=counter),
               per=len(passages))
    latency(bm, queries, res, "bm25_passages")
    bmu = UnitIndex.build(units4k, backend="bm25", counter=counter)
    latency(bmu, queries, res, "bm25_units4k")

    # exact MaxP: vectorised reduceat vs a per-unit loop over the same chunk scores
    cs = bmu.chunk_scores(queries[:50])
    fast = timed(res, "maxp_reduceat", lambda: np.maximum.reduceat(cs, bmu._starts, axis=1))
    owner = bmu._owner
    slow = timed(res, "maxp_loop", lambda: np.stack([cs[:, owner == u].max(axis=1) for u in range(len(bmu.units))], axis=1))
    assert np.allclose(fast, slow)
    res["maxp_reduceat_speedup_cpu"] = res["maxp_loop_s_cpu"] / max(res["maxp_reduceat_s_cpu"], 1e-9)

    sub = Corpus(list(corpus)[: args.dense_docs])
    sub_units = passage_grouping(sub, sizes={d.id: sizes[d.id] for d in sub}).units
    from solstice.retrieval.encoders import load_encoder

    enc = timed(res, "encoder_load", lambda: load_encoder("minilm"))
    dn = timed(res, "dense_index_paragraphs",
               lambda: UnitIndex.build(sub_units, backend="dense", counter=counter, encoder=enc), per=len(sub_units))
    enc._cache.clear()
    latency(dn, queries, res, "dense_numpy")
    fa = UnitIndex(dn.units, dn.chunks, type(dn.scorer)(enc, dn.scorer.emb, "faiss"), dn.info)
    enc._cache.clear()
    latency(fa, queries, res, "dense_faiss")
    res["dense_docs"] = len(sub_units)

    res["load_avg_1min_end"] = os.getloadavg()[0]
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:.3f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
