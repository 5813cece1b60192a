"""DPA-RAG on NQ-open: candidates → reader-preference mining → query augmentation → multi-task
preference reranker (reader labels and `has_answer` labels) → evaluation on the held-out split,
plus the model-independent checks on the released rows.

Every model-dependent step is resumable: per-question work goes through `ctx.map`, whole stages
(candidates, filtering, each reranker, its scores) through `ctx.stage`; trained rerankers are saved
under `artifacts/reranker_*` and reloaded on resume.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.errors import DataError, require
from solstice.metrics.stats import mean_metric, paired_difference_metric, proportion_metric
from solstice.metrics.text import best_em, contains_any
from solstice.papers.dpa_rag import augment as A
from solstice.papers.dpa_rag import data as D
from solstice.papers.dpa_rag import evaluate as E
from solstice.papers.dpa_rag import harness as H
from solstice.papers.dpa_rag import mining as M
from solstice.papers.dpa_rag.config import Config
from solstice.papers.dpa_rag.prompts import OPERATORS, reader_prompt
from solstice.retrieval.preferences import Preference, preference_records

log = logging.getLogger(__name__)
READER_ROLES = ("reader",)
ALL_ROLES = ("reader", "generator")


# -------------------------------------------------------------------------------------- helpers
def _samples(questions: list[D.Question]) -> list[Sample]:
    return [Sample(q.id, q.text, list(q.answers)) for q in questions]


def _harness(ctx) -> dict[str, MetricValue]:
    rows = [r for s in ("valid", "test") for r in D.load_examples(ctx.dataset(D.EXAMPLES[s]), s)]
    train = D.load_examples(ctx.dataset(D.EXAMPLES["train"]), "train")
    p = ctx.stage("released_parity", lambda: H.scorer_parity(rows), roles=())
    for m in p["mismatches"]:
        ctx.warn(f"released row not reproduced: {m}")
    bad = 0
    for r in train:
        try:
            A.validate_record(r)
        except DataError:
            bad += 1
    return {
        "released_em_match": MetricValue(p["em_match"] / p["answers"], p["answers"], note="released before/after em"),
        "released_f1_match": MetricValue(p["f1_match"] / p["answers"], p["answers"], note="released before/after f1"),
        "released_category_match": MetricValue(p["category_match"] / p["rows"], p["rows"],
                                               note="released categories from our label rule"),
        "released_train_schema": MetricValue(1 - bad / len(train), len(train), note="released reranker records"),
    }


def _mine(cfg: Config, ctx, questions, cands, text, key: str, scorer: str, docs_per_q: int | None = None):
    """{question id: record} with `labels` per candidate, by `scorer`."""
    if scorer == "has_answer":
        return {q.id: {"labels": M.mine_has_answer(q.answers, [text[d] for d in cands[q.id][:docs_per_q]])}
                for q in questions}
    reader = ctx.model("reader")
    if scorer == "logprob":
        _require_logprobs(reader)
        sm = M.scoring_model(reader)

        def fn(batch):
            return [M.mine_logprob(sm, s.input, s.target, [text[d] for d in cands[s.id][:docs_per_q]], cfg.tau)
                    for s in batch]
    else:
        def fn(batch):
            return [M.mine_generate(reader, s.input, s.target, [text[d] for d in cands[s.id][:docs_per_q]],
                                    cfg.max_new_tokens) for s in batch]
    rows = ctx.map(_samples(questions), fn, batch_size=1, key=key, roles=READER_ROLES, description=f"mining {key}")
    return {r["sample_id"]: r for r in rows}


def _require_logprobs(reader) -> None:
    reader.require("label_logprobs", purpose="scorer=logprob (use --set scorer=generate for a generate-only "
                   "endpoint)")


def _records(questions, cands, text, labels, cfg: Config, seed: int) -> list[dict[str, Any]]:
    out = []
    for q in questions:
        docs = [text[d] for d in cands[q.id]]
        out += preference_records(q.text, docs, [Preference(x) for x in labels[q.id]["labels"]],
                                  list_size=cfg.list_size, seed=seed)
    return out


def _augment(cfg: Config, ctx, train, records, test_texts) -> tuple[dict[str, list[str]], dict[str, MetricValue]]:
    """Rewrites of the first `augment_queries` training questions that carry a signal, filtered:
    {original question: kept rewrites} and the metrics; rewrites.jsonl and augmented_records.jsonl
    (released schema) are written as artifacts."""
    with_signal = {r["query"] for r in records}
    chosen = [q for q in train if q.text in with_signal][: cfg.augment_queries]
    if not chosen:
        return {}, {}
    gen = ctx.model("generator")
    rows = ctx.map(_samples(chosen), lambda b: [{"rewrites": x} for x in A.rewrite_queries(
        gen, [s.input for s in b], max_new_tokens=cfg.augment_max_new_tokens)], batch_size=5, key="augment",
        roles=("generator",), description="augmentation")

    def filt():
        orig = [q.text for q, r in zip(chosen, rows) for _ in r["rewrites"]]
        rw = [x["rewrite"] for r in rows for x in r["rewrites"]]
        if cfg.augment_filter == "minilm":
            keep, score = A.minilm_keep(orig, rw, cfg.augment_threshold)
        else:
            keep, score = A.nli_keep(orig, rw, cfg.augment_filter)
        held = {D.question_key(t) for t in test_texts}
        leak = [bool(x.strip()) and D.question_key(x) in held for x in rw]
        return {"keep": [k and not lk for k, lk in zip(keep, leak)], "score": score, "test_collisions": sum(leak)}

    f = ctx.stage("augment_filter", filt, roles=("generator",))
    kept: dict[str, list[str]] = {}
    lines, i = [], 0
    ops: dict[str, list[bool]] = {op: [] for op in OPERATORS}
    for q, r in zip(chosen, rows):
        for x in r["rewrites"]:
            k = f["keep"][i]
            ops[x["operator"]].append(k)
            lines.append({"query": q.text, **x, "score": f["score"][i], "kept": k})
            if k:
                kept.setdefault(q.text, []).append(x["rewrite"])
            i += 1
    aug = A.augmented_records(records, kept)
    ctx.artifact("rewrites.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ctx.artifact("augmented_records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in aug))
    m = {"augment_kept": proportion_metric([k for v in ops.values() for k in v], note="rewrites passing the filter")}
    m.update({f"augment_kept_{op}": proportion_metric(v) for op, v in ops.items() if v})
    m["augment_test_collisions"] = MetricValue(float(f["test_collisions"]), len(lines), higher_is_better=False,
                                               note="rewrites equal to a held-out question (dropped)")
    return kept, m


def _reranker(cfg: Config, ctx, name: str, records, weighting: str, epochs: int):
    """Train (or, on resume, reload) one reranker; its folder is artifacts/<name>."""
    from solstice.training import reranker as R

    path = ctx.artifact(name)

    def fit():
        torch = require("torch", "hf")
        init = cfg.reranker_init
        if init == "minilm":
            from solstice.retrieval.encoders import embedded_minilm_dir

            init = str(embedded_minilm_dir())
        torch.manual_seed(42 + ctx.seed)  # the new head's initial weights
        model = R.load_reranker(init, max_length=cfg.max_length)
        rcfg = R.RerankerConfig(tasks=tuple(cfg.tasks), weighting=weighting, epochs=epochs, lr=cfg.lr,
                                batch_size=cfg.rr_batch, max_length=cfg.max_length, seed=42 + ctx.seed)
        res = R.train_reranker(records, model, rcfg, checkpoint_dir=ctx.artifact(f"{name}_checkpoint"))
        R.save_reranker(res.model, path)
        ctx.artifact(f"{name}_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in res.history))
        last = res.history[-1]
        return {"steps": len(res.history), "records": len(records), "last": last}

    info = ctx.stage(name, fit, roles=ALL_ROLES)
    return R.load_reranker(path, max_length=cfg.max_length), info


def _scores(ctx, name: str, model, questions, cands, text) -> dict[str, list[float]]:
    def fn():
        pairs = [(q.text, text[d]) for q in questions for d in cands[q.id]]
        s = model.predict(pairs, batch_size=32, show_progress_bar=False) if pairs else []
        out, i = {}, 0
        for q in questions:
            n = len(cands[q.id])
            out[q.id] = [float(x) for x in s[i:i + n]]
            i += n
        return out

    return ctx.stage(f"scores_{name}", fn, roles=ALL_ROLES)


# ------------------------------------------------------------------------------------------ run
def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    if cfg.scorer == "logprob" or (cfg.scorer == "generate" and cfg.gen_rule_questions):
        _require_logprobs(ctx.model("reader"))  # one line before any work, not after indexing
    metrics: dict[str, MetricValue] = _harness(ctx) if cfg.harness else {}
    questions, corpus = D.load_oracle(ctx.dataset(D.NQ_ORACLE))
    train_all, test_all = D.split(questions, cfg.test_share, cfg.split_seed)
    train = ctx.limited(train_all[: cfg.train_questions])
    test = ctx.limited(test_all if cfg.test_questions == 0 else test_all[: cfg.test_questions])
    corpus = D.sub_corpus(corpus, train + test, cfg.corpus_docs, cfg.split_seed)
    text = {d.id: d.render() for d in corpus}
    used = train + test
    log.info("dpa_rag: %d train / %d test questions, corpus %d passages", len(train), len(test), len(corpus))
    cands = ctx.stage("candidates", lambda: dict(zip([q.id for q in used], M.candidates(
        corpus, [q.text for q in used], k=cfg.retrieval_k, n=cfg.candidates, encoder=cfg.encoder))), roles=())

    # -- preference mining --------------------------------------------------------------------
    lab_train = _mine(cfg, ctx, train, cands, text, "mine_train", cfg.scorer)
    lab_test = _mine(cfg, ctx, test, cands, text, "mine_test", cfg.scorer)
    ha_train = _mine(cfg, ctx, train, cands, text, "", "has_answer")
    ha_test = _mine(cfg, ctx, test, cands, text, "", "has_answer")
    flat = [Preference(x) for q in train for x in lab_train[q.id]["labels"]]
    for p in Preference:
        metrics[f"mined_share_{p.name.lower()}"] = proportion_metric([x is p for x in flat], note="training pairs")
    # the paper's preliminary analysis: helpful documents below the top ranks, misleading ones in them
    by_rank = [(r, Preference(x)) for q in train for r, x in enumerate(lab_train[q.id]["labels"])]
    metrics["unaligned_share_top3"] = proportion_metric([p is Preference.UNALIGNED for r, p in by_rank if r < 3],
                                                        note="training pairs at fused ranks 1-3")
    if any(r >= 3 for r, _ in by_rank):
        metrics["aligned_share_rank4plus"] = proportion_metric(
            [p is Preference.ALIGNED for r, p in by_rank if r >= 3], note="training pairs at fused ranks 4+")
    from solstice.metrics.agreement import agreement

    hx = [x is Preference.ALIGNED for q in train for x in map(Preference, ha_train[q.id]["labels"])]
    metrics["kappa_reader_vs_has_answer"] = agreement([x is Preference.ALIGNED for x in flat], hx).metric(
        "kappa", note="aligned-or-not, reader labels vs has_answer, training pairs")
    other = {"logprob": "generate", "generate": "logprob"}.get(cfg.scorer)
    if other and cfg.gen_rule_questions:
        sub = train[: cfg.gen_rule_questions]
        alt = _mine(cfg, ctx, sub, cands, text, f"mine_{other}", other, cfg.gen_rule_docs)
        a = [Preference(x) for q in sub for x in lab_train[q.id]["labels"][: cfg.gen_rule_docs]]
        b = [Preference(x) for q in sub for x in alt[q.id]["labels"]]
        metrics[f"kappa_{cfg.scorer}_vs_{other}"] = agreement([x.name for x in a], [x.name for x in b],
                                                              positive=None).metric("kappa", note="four categories")

    # -- training records, augmentation, leak check --------------------------------------------
    rec = _records(train, cands, text, lab_train, cfg, 42 + ctx.seed)
    rec_ha = _records(train, cands, text, ha_train, cfg, 42 + ctx.seed)
    if not rec:
        raise DataError(f"no aligned/unaligned documents among {len(flat)} mined pairs; lower tau or mine more "
                        "questions")
    test_texts = [q.text for q in test]
    kept, m = _augment(cfg, ctx, train, rec, test_texts) if cfg.augment_queries else ({}, {})
    metrics.update(m)
    if cfg.train_on_augmented and kept:
        rec = rec + A.augmented_records(rec, kept)
        rec_ha = rec_ha + A.augmented_records(rec_ha, kept)
    leaks = A.leaked_queries(rec + rec_ha, test_texts)
    metrics["leaked_test_questions"] = MetricValue(float(len(leaks)), len(rec) + len(rec_ha), higher_is_better=False)
    A.check_no_leak(rec + rec_ha, test_texts)
    for r in rec:
        A.validate_record(r)
    ctx.artifact("train_records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rec))

    # -- rerankers ----------------------------------------------------------------------------
    rr_main, info = _reranker(cfg, ctx, "reranker_reader", rec, cfg.weighting, cfg.epochs)
    rr_ha, _ = _reranker(cfg, ctx, "reranker_has_answer", rec_ha, cfg.weighting, cfg.epochs)
    arms = {"retriever": {q.id: list(range(len(cands[q.id]))) for q in test}}
    arms["reranked"] = {q: E.order_from_scores(s) for q, s in _scores(ctx, "reader", rr_main, test, cands, text).items()}
    arms["reranked_has_answer"] = {q: E.order_from_scores(s) for q, s in
                                   _scores(ctx, "has_answer", rr_ha, test, cands, text).items()}
    alt_w = {"sum": "mgda", "mgda": "sum"}[cfg.weighting]
    if cfg.compare_weighting:
        rr_alt, _ = _reranker(cfg, ctx, f"reranker_reader_{alt_w}", rec, alt_w, 1)
        arms[f"reranked_{alt_w}"] = {q: E.order_from_scores(s) for q, s in
                                     _scores(ctx, f"reader_{alt_w}", rr_alt, test, cands, text).items()}
    from solstice.training.reranker import classification_report

    held = _records(test, cands, text, lab_test, cfg, 42 + ctx.seed)
    if held and len({r["classification"]["label"] for r in held}) == 2:
        rep = classification_report(rr_main, held)
        for k in ("accuracy", "f1"):
            metrics[f"reranker_{k}_aligned"] = MetricValue(rep[k], len(held), note="held-out labelled pairs")

    # -- retrieval-side metrics on questions with a reader-helpful candidate --------------------
    hq = [q for q in test if E.helpful(lab_test[q.id]["labels"])]
    metrics["test_questions_with_helpful_doc"] = proportion_metric([bool(E.helpful(lab_test[q.id]["labels"]))
                                                                    for q in test])
    per: dict[str, dict[str, list[float]]] = {}
    for arm, orders in arms.items():
        labs = [lab_test[q.id]["labels"] for q in hq]
        per[arm] = {"hit1": [E.hit_at(orders[q.id], lb, 1) for q, lb in zip(hq, labs)],
                    "hit3": [E.hit_at(orders[q.id], lb, 3) for q, lb in zip(hq, labs)],
                    "mrr": [E.mrr(orders[q.id], lb) for q, lb in zip(hq, labs)],
                    "ndcg3": [E.ndcg(orders[q.id], lb, 3) for q, lb in zip(hq, labs)]}
        for k, v in per[arm].items():
            metrics[f"{k}_{arm}"] = mean_metric(v, note="questions with a reader-helpful candidate")
        metrics[f"answer_hit1_{arm}"] = mean_metric(  # DPR-style: the first document contains an answer
            [E.hit_at(orders[q.id], ha_test[q.id]["labels"], 1) for q in test], note="all held-out questions")
    if hq:
        metrics["hit1_reranked_minus_retriever"] = paired_difference_metric(per["reranked"]["hit1"],
                                                                            per["retriever"]["hit1"])
        metrics["mrr_reranked_minus_retriever"] = paired_difference_metric(per["reranked"]["mrr"],
                                                                           per["retriever"]["mrr"])
        metrics["hit1_reader_labels_minus_has_answer_labels"] = paired_difference_metric(
            per["reranked"]["hit1"], per["reranked_has_answer"]["hit1"])
        if cfg.compare_weighting:
            metrics[f"hit1_{cfg.weighting}_minus_{alt_w}"] = paired_difference_metric(
                per["reranked"]["hit1"], per[f"reranked_{alt_w}"]["hit1"])

    # -- reader with the top-k of each order ---------------------------------------------------
    metrics.update(_read(cfg, ctx, test, cands, text, arms))
    return metrics


def _read(cfg: Config, ctx, test, cands, text, arms) -> dict[str, MetricValue]:
    from solstice.models.base import GenParams

    reader = ctx.model("reader")
    keys = [(arm, k) for arm in arms for k in cfg.reader_k]

    def fn(batch):
        prompts: dict[str, Any] = {}
        plan = []
        for s in batch:
            row = {}
            for arm, k in keys:
                docs = [text[cands[s.id][i]] for i in arms[arm][s.id][:k]]
                p = reader_prompt(s.input, docs)
                pk = json.dumps(p)
                prompts.setdefault(pk, p)
                row[f"{arm}@{k}"] = pk
            plan.append(row)
        outs = reader.generate_text(list(prompts.values()),
                                    GenParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0))
        ans = dict(zip(prompts, outs))
        return [{"answers": {a: ans[pk] for a, pk in row.items()}} for row in plan]

    rows = ctx.map(_samples(test), fn, batch_size=cfg.batch_size, key="read", roles=ALL_ROLES,
                   description="reader")
    out: dict[str, MetricValue] = {}
    hits: dict[str, list[float]] = {}
    for arm, k in keys:
        name = f"{arm}@{k}"
        hits[name] = [float(contains_any(r["answers"][name], q.answers)) for q, r in zip(test, rows)]
        out[f"reader_hits_{arm}_top{k}"] = mean_metric(hits[name], note="Hits@1 (containment)")
        out[f"reader_em_{arm}_top{k}"] = mean_metric(
            [float(best_em(r["answers"][name], q.answers)) for q, r in zip(test, rows)], note="strict EM")
    for k in cfg.reader_k:
        out[f"reader_hits_top{k}_reranked_minus_retriever"] = paired_difference_metric(
            hits[f"reranked@{k}"], hits[f"retriever@{k}"])
    kmax = max(cfg.reader_k)  # the claim's metric: the largest k (paper: top-3)
    out["reader_hits_reranked_minus_retriever"] = out[f"reader_hits_top{kmax}_reranked_minus_retriever"]
    return out
