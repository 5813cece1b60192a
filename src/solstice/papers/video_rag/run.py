"""The VLQA evaluation (our protocol; the paper reports no metric): moment retrieval by arm on the
SQuAD-as-video library, two-moment retrieval on HotpotQA, and grounded answers with validated
citations. Every comparison is paired on the same questions."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import numpy as np

from solstice.core.context import RunContext
from solstice.core.types import MetricValue, Sample
from solstice.metrics.retrieval import reciprocal_rank
from solstice.metrics.stats import mean_metric, paired_difference_metric, proportion_metric
from solstice.metrics.text import best_f1, contains_any
from solstice.papers.video_rag import data as D
from solstice.papers.video_rag.config import Config
from solstice.papers.video_rag.grounding import (
    answer_prompt,
    citation_dicts,
    parse_citations,
    validate,
)
from solstice.papers.video_rag.library import MomentStore
from solstice.papers.video_rag.queries import QueryGenerator, fallback_queries, library_idf
from solstice.papers.video_rag.retriever import MomentRetriever, dense_arm
from solstice.papers.video_rag.timecode import temporal_iou


def _sample(questions: Sequence[D.Question], n: int, seed: int) -> list[D.Question]:
    qs = list(questions)
    random.Random(seed).shuffle(qs)
    return qs[:n]


def _generated_queries(cfg: Config, ctx: RunContext, qs: Sequence[D.Question], key: str) -> dict[str, list[str]]:
    if not qs:
        return {}
    gen = QueryGenerator(ctx.model("generator"), n_queries=cfg.n_queries, keywords_per_query=cfg.keywords_per_query,
                         max_new_tokens=cfg.query_max_new_tokens)

    def fn(batch: list[Sample]) -> list[dict]:
        return [{"queries": q, "raw": raw} for q, raw in gen([s.input for s in batch])]

    rows = ctx.map([Sample(q.id, q.text) for q in qs], fn, batch_size=cfg.batch_size, key=key,
                   description=f"query generation ({key})")
    return {r["sample_id"]: r["queries"] for r in rows}


def _rankings(cfg: Config, ctx: RunContext, store: MomentStore, qs: Sequence[D.Question], llm_ids: set[str],
              key: str) -> dict[str, dict[str, list[str]]]:
    """Moment ids ranked by each arm for each question (arms needing the generator only on llm_ids)."""
    idf_cache: dict[str, float] = {}
    generated = _generated_queries(cfg, ctx, [q for q in qs if q.id in llm_ids], f"{key}-queries") \
        if {"llm", "llm_dense"} & set(cfg.arms) else {}
    dense = None
    if "llm_dense" in cfg.arms:
        from solstice.retrieval.encoders import load_encoder

        dense = dense_arm(store, load_encoder(cfg.encoder))
    kw = dict(per_query_k=cfg.per_query_k, rrf_k=cfg.rrf_k, cap=cfg.cap, iou=cfg.iou, raw_weight=cfg.raw_weight)
    plain = MomentRetriever(store, **kw)
    with_dense = MomentRetriever(store, dense=dense, **kw)
    out: dict[str, dict[str, list[str]]] = {}
    for q in qs:
        words = [w for w in q.text.split() if w.lower() not in idf_cache]
        idf_cache.update({k.lower(): v for k, v in library_idf(store.index, words).items()})
        arms: dict[str, list[str]] = {}
        for arm in cfg.arms:
            if arm == "raw":
                hits = plain.retrieve(q.text, fuse=True)
            elif arm == "fallback":
                hits = plain.retrieve(q.text, fallback_queries(q.text, idf_cache, n_queries=cfg.n_queries,
                                                               keywords_per_query=cfg.keywords_per_query))
            elif q.id in generated:
                hits = (with_dense if arm == "llm_dense" else plain).retrieve(q.text, generated[q.id])
            else:
                continue
            arms[arm] = [h.moment.moment_id for h in hits]
        out[q.id] = arms
    return out


def _recall_metrics(cfg: Config, qs: Sequence[D.Question], ranks: dict[str, dict[str, list[str]]], prefix: str,
                    all_gold: bool = False) -> dict[str, MetricValue]:
    m: dict[str, MetricValue] = {}
    for arm in cfg.arms:
        rows = [(q, ranks[q.id][arm]) for q in qs if arm in ranks[q.id]]
        if not rows:
            continue
        for k in cfg.ks:
            hit = [(set(q.gold) <= set(r[:k])) if all_gold else bool(set(q.gold) & set(r[:k])) for q, r in rows]
            m[f"{prefix}r{k}_{arm}"] = proportion_metric(hit)
        if not all_gold:
            m[f"{prefix}mrr_{arm}"] = mean_metric([reciprocal_rank(r, q.gold) for q, r in rows])
    # paired differences on the questions both arms ranked
    pairs = [("fallback", "raw"), ("llm", "raw"), ("llm", "fallback"), ("llm_dense", "llm")]
    k = 10 if 10 in cfg.ks else cfg.ks[0]
    for a, b in pairs:
        if a in cfg.arms and b in cfg.arms:
            both = [q for q in qs if a in ranks[q.id] and b in ranks[q.id]]
            if not both:
                continue

            def flag(q: D.Question, arm: str) -> float:
                top = set(ranks[q.id][arm][:k])
                return float(set(q.gold) <= top if all_gold else bool(set(q.gold) & top))

            m[f"{prefix}d_r{k}_{a}_{b}"] = paired_difference_metric(
                [flag(q, a) for q in both], [flag(q, b) for q in both], unit="questions")
    return m


def _answers(cfg: Config, ctx: RunContext, store: MomentStore, qs: Sequence[D.Question],
             ranks: dict[str, dict[str, list[str]]]) -> dict[str, MetricValue]:
    from solstice.models.base import GenParams
    from solstice.models.tokens import get_counter

    model = ctx.model("answerer")
    counter = get_counter("model", model)
    by_id = {m.moment_id: m for m in store.moments}
    gold_of = {q.id: q for q in qs}

    def fn(batch: list[Sample]) -> list[dict]:
        prompts, shown = [], []
        for s in batch:
            moments = [by_id[i] for i in ranks[s.id][cfg.answer_arm][: cfg.answer_top]]
            p, n = answer_prompt(s.input, moments, budget=cfg.answer_budget, counter=counter)
            prompts.append(p)
            shown.append(moments[:n])
        outs = model.generate([[{"role": "user", "content": p}] for p in prompts],
                              GenParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0))
        rows = []
        for s, o, moments, p in zip(batch, outs, shown, prompts):
            text = o[0].text
            cites = validate(parse_citations(text), moments, snap_seconds=cfg.snap_seconds)
            gold = [by_id[g] for g in gold_of[s.id].gold]
            hits = [any(c.video_id == g.video_id and temporal_iou((c.start, c.end), g.span) >= 0.5 for g in gold)
                    for c in cites]
            cited_gold = [any(c.status != "invalid" and c.video_id == g.video_id
                              and temporal_iou((c.start, c.end), g.span) >= 0.5 for c in cites) for g in gold]
            rows.append({"answer": text, "prompt_tokens": counter.count(p), "citations": citation_dicts(cites),
                         "citation_hits": hits, "gold_cited": cited_gold,
                         "contains": contains_any(text, list(s.target)), "f1": best_f1(text, list(s.target))})
        return rows

    samples = [Sample(q.id, q.text, list(q.answers)) for q in qs]
    rows = ctx.map(samples, fn, batch_size=cfg.batch_size, key="answers", description="grounded answers")
    cites = [c for r in rows for c in r["citations"]]
    hits = [h for r in rows for h in r["citation_hits"]]
    out = {
        "answer_contains": proportion_metric([r["contains"] for r in rows]),
        "answer_f1": mean_metric([r["f1"] for r in rows]),
        "uncited_rate": proportion_metric([not any(c["status"] != "invalid" for c in r["citations"]) for r in rows],
                                          higher_is_better=False),
        "grounded_answer_rate": proportion_metric([any(c["status"] != "invalid" for c in r["citations"])
                                                   for r in rows]),
        "answers_without_citation": proportion_metric([not r["citations"] for r in rows], higher_is_better=False),
        "citations_per_answer": mean_metric([len(r["citations"]) for r in rows], higher_is_better=None),
        "cite_recall": mean_metric([float(np.mean(r["gold_cited"])) for r in rows if r["gold_cited"]]),
    }
    if cites:
        out["cite_validity"] = proportion_metric([c["status"] == "valid" for c in cites])
        out["cite_precision"] = proportion_metric(hits)
    else:
        nan = float("nan")
        out["cite_validity"] = MetricValue(nan, 0, None, True, "the model wrote no citation")
        out["cite_precision"] = MetricValue(nan, 0, None, True, "the model wrote no citation")
    return out


def run(cfg: Config, ctx: RunContext) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {}
    info: dict = {}
    if {"retrieval", "answers"} & set(cfg.experiments):
        store, questions = D.squad_library(ctx.dataset(D.SQUAD24))
        metrics["library_moments"] = MetricValue(float(len(store)), len(store), None, None, "SQuAD-24 paragraphs")
        metrics["library_videos"] = MetricValue(float(len(store.videos)), len(store.videos), None, None)
        qs = ctx.limited(_sample(questions, cfg.retrieval_questions, ctx.seed))
        llm_ids = {q.id for q in qs[: cfg.llm_questions]}
        answer_qs = qs[: cfg.answer_questions] if "answers" in cfg.experiments else []
        need_ids = llm_ids | ({q.id for q in answer_qs} if cfg.answer_arm in ("llm", "llm_dense") else set())
        ranks = _rankings(cfg, ctx, store, qs, need_ids, "squad")
        if "retrieval" in cfg.experiments:
            metrics.update(_recall_metrics(cfg, qs, ranks, "squad_"))
        info["squad"] = {"questions": len(qs), "llm_questions": len(llm_ids), "moments": len(store)}
        if answer_qs:
            metrics.update(_answers(cfg, ctx, store, answer_qs, ranks))
            info["answers"] = {"questions": len(answer_qs), "arm": cfg.answer_arm}
    if "multi" in cfg.experiments:
        store, questions = D.hotpot_library(ctx.dataset(D.HOTPOT_IRCOT))
        qs = ctx.limited(_sample(questions, cfg.multi_questions, ctx.seed))
        llm_ids = {q.id for q in qs[: cfg.llm_questions]}
        ranks = _rankings(cfg, ctx, store, qs, llm_ids, "hotpot")
        metrics.update(_recall_metrics(cfg, qs, ranks, "hotpot_allgold_", all_gold=True))
        info["hotpot"] = {"questions": len(qs), "llm_questions": len(llm_ids), "moments": len(store)}
    ctx.artifact("experiment_info.json").write_text(json.dumps(info, indent=1))
    return metrics
