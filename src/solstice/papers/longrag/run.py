"""LongRAG runner: metric parity on the released reader outputs, the retrieval experiment
(passages vs grouped long units vs random groups, MaxP vs first-window truncation), same-source
grouping on SQuAD, and the long reader at equal context tokens."""

from __future__ import annotations

import logging
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.metrics import mean_metric, proportion_metric
from solstice.metrics.retrieval import em_longrag, em_strict, qa_scores, substring_match
from solstice.papers.longrag import data as D
from solstice.papers.longrag.config import Config
from solstice.papers.longrag.experiment import Workbench, arm_names, pair_stats
from solstice.papers.longrag.report import plot_retrieval, retrieval_tables
from solstice.retrieval.select import select

log = logging.getLogger(__name__)


def spread(items: list, n: int) -> list:
    """`n` items evenly spaced over the list (all when n >= len): the HotpotQA files are sorted by
    question type, so a prefix would hold only bridge questions."""
    if n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def _parity(ctx) -> dict[str, MetricValue]:
    """Our metric code on the official outputs: lenient EM and substring flags must match theirs."""
    out: dict[str, MetricValue] = {}
    agree: list[bool] = []
    for name, src in D.READER_OUTPUTS.items():
        rows = D.load_reader_outputs(ctx.dataset(src))
        em = [em_longrag(r["short_ans"], r["answers"]) for r in rows]
        sub = [substring_match(r["long_ans"], r["answers"]) for r in rows]
        agree += [a == bool(r["is_exact_match"]) for a, r in zip(em, rows)]
        agree += [a == bool(r["is_substring_match"]) for a, r in zip(sub, rows)]
        out[f"parity_em_longrag_{name}"] = proportion_metric(em)
        out[f"parity_em_strict_{name}"] = proportion_metric([em_strict(r["short_ans"], r["answers"]) for r in rows])
        out[f"parity_substring_{name}"] = proportion_metric(sub)
        out[f"parity_retrieval_{name}"] = proportion_metric([bool(r.get("is_retrieval")) for r in rows],
                                                             note="official flag, as released")
    out["parity_flag_agreement"] = proportion_metric(agree, note="our em_longrag / substring_match vs the official flags")
    return out


def _corpus(cfg: Config, ctx):
    if cfg.dataset == "custom":
        from solstice.data import DataSource
        from solstice.retrieval.documents import Corpus

        corpus = Corpus.from_file(ctx.dataset(DataSource("custom-corpus", cfg.corpus_file)))
        qs = D.custom_questions(ctx.dataset(DataSource("custom-questions", cfg.questions_file)))
        return corpus, D.resolve_supporting(corpus, qs)
    amor = ctx.dataset(D.HOTPOT_AMOR) if cfg.include_amor else None
    return D.hotpot_corpus_and_questions(ctx.dataset(D.HOTPOT_IRCOT), amor)


def _add_flags(out: dict[str, MetricValue], res: dict[str, list], suffix: str, prefix: str = "") -> None:
    for key, vals in res.items():
        if key == "id":
            continue
        v = [x for x in vals if x is not None]
        if key.startswith("tok_"):
            out[f"{prefix}{key}_{suffix}"] = mean_metric(v, higher_is_better=None)
        elif v:
            out[f"{prefix}{key}_{suffix}"] = proportion_metric([bool(x) for x in v])


def _paired_arms(out: dict[str, MetricValue], scored: dict[str, dict[str, list]], suffix: str, base: str,
                 prefix: str = "") -> None:
    """Comparison claims between arms read the paired difference on the same questions:
    diff_<flag>_<arm>_vs_<other>_<suffix> for each grouped arm against the base arm, and the
    largest grouped arm against its random and first-chunk controls."""
    from solstice.metrics.stats import paired_difference_metric

    units = [a for a in scored if a.startswith("units")]
    pairs = [(a, base) for a in units if base in scored]
    if units:
        top = max(units, key=lambda a: int(a[5:]) if a[5:].isdigit() else 0)
        cap = top[5:]
        pairs += [(top, c) for c in (f"random{cap}", f"first{cap}") if c in scored]
    for a, b in pairs:
        ra, rb = scored[a], scored[b]
        ib = {q: i for i, q in enumerate(rb["id"])}
        for key, va in ra.items():
            if key == "id" or key.startswith("tok_") or key not in rb:
                continue
            both = [(x, rb[key][ib[q]]) for q, x in zip(ra["id"], va) if q in ib and x is not None
                    and rb[key][ib[q]] is not None]
            if both:
                out[f"diff_{prefix}{key}_{a}_vs_{b}_{suffix}"] = paired_difference_metric(
                    [x for x, _ in both], [y for _, y in both], note=f"{a} minus {b}, paired over questions")


def _retrieval(cfg: Config, ctx, wb: Workbench, questions) -> tuple[dict[str, MetricValue], dict[str, Any]]:
    out: dict[str, MetricValue] = {}
    arms = arm_names(cfg, sorted(cfg.group_caps), random=cfg.random_control, first=cfg.maxp_ablation)
    info: dict[str, Any] = {"arms": arms, "n_questions": len(questions), "stages": {}}
    for ret in cfg.retrievers:
        scored = {}
        for arm in arms:
            ranking = ctx.stage(f"ranking-{wb.name}-{arm}-{ret}",
                                lambda a=arm, r=ret: wb.rank(a, r, questions, cfg.ks, cfg.budgets))
            scored[arm] = wb.score(arm, ranking, questions, cfg.ks, cfg.budgets)
            _add_flags(out, scored[arm], f"{arm}_{ret}")
            info["stages"][f"{arm}_{ret}"] = {k: ranking[k] for k in ("search_seconds", "n_chunks", "n_units")}
        _paired_arms(out, scored, ret, arms[0])

    def grouping_report() -> dict[str, Any]:
        rep = {"adjacency": wb.adjacency.stats(), "timings": wb.timings}
        for arm in arms:
            if not arm.startswith("first"):
                rep[arm] = {k: v for k, v in wb.grouping(arm).report.items() if k != "adjacency"}
        for cap in cfg.group_caps:
            rep[f"pairs_units{cap}"] = pair_stats(wb, f"units{cap}", questions)
        return rep

    rep = ctx.stage(f"grouping-{wb.name}", grouping_report)
    for cap in cfg.group_caps:
        ps = rep[f"pairs_units{cap}"]
        if ps["same_unit"]:
            out[f"pair_same_unit_units{cap}"] = proportion_metric([bool(x) for x in ps["same_unit"]])
            out["pair_linked"] = proportion_metric([bool(x) for x in ps["linked"]])
    info["grouping"] = rep
    return out, info


def _reader(cfg: Config, ctx, wb: Workbench, questions) -> dict[str, MetricValue]:
    """Passages vs grouped units read by the same reader at equal contexts, measured in the
    reader's own tokens: units are grouped with the reader's tokenizer (cap: `reader_cap`, default
    90% of the budget, leaving room for titles), and both arms fill the budget in rank order with
    every unit whose text and title fit (`fill="skip"`), so neither arm is cut by the reader."""
    from solstice.papers.longrag.prompts import format_titles, load_demos
    from solstice.papers.longrag.reader import LongReader

    qs = ctx.limited(spread(questions, cfg.reader_questions))
    samples = [Sample(q.id, q.text, list(q.answers), {"supporting": list(q.supporting)}) for q in qs]
    by_id = {q.id: q for q in qs}
    budget = cfg.reader_budget
    cap = cfg.reader_cap or int(0.85 * budget)
    arm_of = {"passages": "passages", "units": f"units{cap}"}
    prompt = cfg.reader_prompt if cfg.reader_prompt != "auto" else ("hotpotqa" if cfg.dataset == "hotpotqa" else "nq")
    state: dict[str, Any] = {}

    def reader() -> LongReader:
        if "reader" not in state:
            model = ctx.model("reader")  # cached only with --cache (keyed on the weights' fingerprint)
            # the units the reader reads are sized in its own tokens
            state["wb"] = Workbench(wb.corpus, cfg, adjacency=wb.kind, name=f"{wb.name}-reader", group_counter=model,
                                    relations=wb.adjacency)
            state["reader"] = LongReader(
                model, prompt=prompt, max_new_tokens=cfg.max_new_tokens, extraction=cfg.extraction,
                extraction_max_new_tokens=cfg.extraction_max_new_tokens, demos=load_demos(cfg.extraction_demos or None),
                context_budget=budget)
            state["tokens"] = {}
        return state["reader"]

    def run_arm(arm: str):
        def fn(batch: list[Sample]) -> list[dict[str, Any]]:
            rd = reader()
            # passages are single documents whatever counts them: the run's passage index serves
            idx = (wb if arm == "passages" else state["wb"]).index(arm_of[arm], cfg.reader_retriever)
            counts: dict[str, int] = state["tokens"]

            def size(h) -> int:  # the unit's text, its titles and the blank line between texts
                if h.unit_id not in counts:
                    u = idx.unit(h.unit_id)
                    counts[h.unit_id] = (rd.model.count_tokens(u.text) + rd.model.count_tokens(format_titles(u.titles))
                                         + 2)
                return counts[h.unit_id]

            hits = idx.search([s.input for s in batch], k=min(len(idx), cfg.depth))
            items, sels = [], []
            for s, hs in zip(batch, hits):
                fits = [h for h in hs if size(h) <= budget]  # a unit whose text and titles exceed the budget is never cut
                sel = select(fits, size, budget=budget, fill="skip")
                units = [idx.unit(h.unit_id) for h in sel.items]
                sels.append((sel, units))
                items.append((s.input, [(u.text, list(u.titles)) for u in units]))
            outs = rd.read(items)
            rows = []
            for s, (sel, units), o in zip(batch, sels, outs):
                q = by_id[s.id]
                used_docs = {d for u in units[: o.units_used] for d in u.doc_ids}
                row = {"arm": arm, "question": q.text, "answers": list(q.answers), **o.to_json(),
                       "selected_units": [u.id for u in units], "budget_truncated": sel.truncated,
                       "docs_read": len(used_docs), "budget": budget,
                       "support": bool(q.supporting) and set(q.supporting) <= used_docs}
                if not o.error:
                    row.update(qa_scores(o.short_answer, q.answers, o.long_answer))
                rows.append(row)
            return rows

        return ctx.map(samples, fn, batch_size=cfg.reader_batch_size, key=f"reader-{arm}", description=f"reader {arm}")

    out: dict[str, MetricValue] = {}
    per_arm: dict[str, dict[str, dict[str, Any]]] = {}
    for arm in cfg.reader_arms:
        rows = run_arm(arm)
        per_arm[arm] = {r["sample_id"]: r for r in rows}
        ok = [r for r in rows if not r.get("error")]
        for m in ("em_longrag", "em_strict", "substring_match", "f1"):
            vals = [r[m] for r in ok]
            out[f"reader_{m}_{arm}"] = proportion_metric([bool(v) for v in vals]) if m != "f1" else mean_metric(vals)
        out[f"reader_support_{arm}"] = proportion_metric([r["support"] for r in rows])
        out[f"reader_context_tokens_{arm}"] = mean_metric([r["context_tokens"] for r in rows], higher_is_better=None,
                                                          note=f"reader tokens of the context (titles included); budget {budget}")
        out[f"reader_docs_{arm}"] = mean_metric([r.get("docs_read", 0) for r in rows], higher_is_better=None,
                                                note="documents in the context")
        out[f"reader_failures_{arm}"] = MetricValue(float(len(rows) - len(ok)), len(rows), None, False)
        lost = sum(1 for r in rows if r["units_dropped"] or r["cut"])
        out[f"reader_contexts_cut_{arm}"] = MetricValue(float(lost), len(rows), None, False,
                                                        "contexts the reader had to cut or shorten")
        if lost:
            ctx.warn(f"reader {arm}: {lost} of {len(rows)} contexts lost units or were cut to fit the budget or window")
    if {"passages", "units"} <= set(per_arm):
        from solstice.metrics.stats import paired_difference_metric

        both = [i for i in per_arm["units"] if i in per_arm["passages"]
                and not per_arm["units"][i].get("error") and not per_arm["passages"][i].get("error")]
        for m in ("em_longrag", "em_strict", "support", "context_tokens"):
            if both:
                out[f"reader_{m}_diff"] = paired_difference_metric(
                    [float(per_arm["units"][i][m]) for i in both], [float(per_arm["passages"][i][m]) for i in both],
                    unit="items", higher_is_better=None, note="units minus passages, paired over questions")
    return out


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    metrics: dict[str, MetricValue] = {}
    if "parity" in cfg.experiments:
        metrics |= _parity(ctx)
    info: dict[str, Any] = {}
    wb = None
    questions: list = []
    if {"retrieval", "reader"} & set(cfg.experiments):
        corpus, questions = _corpus(cfg, ctx)
        wb = Workbench(corpus, cfg, adjacency=cfg.adjacency, name=cfg.dataset)
        info["corpus"] = {"name": corpus.name, "n_docs": len(corpus), "fingerprint": corpus.fingerprint(),
                          "n_questions": len(questions)}
    if "retrieval" in cfg.experiments and wb is not None:
        qs = spread(questions, cfg.retrieval_questions) if cfg.retrieval_questions else questions
        m, info["retrieval"] = _retrieval(cfg, ctx, wb, ctx.limited(qs))
        metrics |= m
    if "squad" in cfg.experiments:
        scorpus, squad_qs = D.squad_corpus_and_questions(ctx.dataset(D.SQUAD24))
        sq = spread(squad_qs, cfg.squad_questions) if cfg.squad_questions else squad_qs
        swb = Workbench(scorpus, cfg.model_copy(update={"split_oversized": False}), adjacency="sequence",
                        name="squad", base="paragraphs")
        for ret in cfg.retrievers:
            scored = {}
            for arm in arm_names(cfg, sorted(cfg.squad_caps), base="paragraphs", random=False, first=False):
                sqs = ctx.limited(sq)
                ranking = ctx.stage(f"ranking-squad-{arm}-{ret}",
                                    lambda a=arm, r=ret, qq=sqs: swb.rank(a, r, qq, cfg.ks, cfg.budgets))
                scored[arm] = swb.score(arm, ranking, sqs, cfg.ks, cfg.budgets)
                _add_flags(metrics, scored[arm], f"{arm}_{ret}", prefix="squad_")
            _paired_arms(metrics, scored, ret, "paragraphs", prefix="squad_")
        info["squad"] = ctx.stage("grouping-squad", lambda: {
            a: {k: v for k, v in swb.grouping(a).report.items() if k != "adjacency"}
            for a in ["paragraphs"] + [f"units{c}" for c in cfg.squad_caps]})
    if "reader" in cfg.experiments and wb is not None:
        metrics |= _reader(cfg, ctx, wb, questions)
    tables = retrieval_tables(metrics, cfg)
    if tables:
        ctx.artifact("retrieval_tables.md").write_text(tables)
        plot = plot_retrieval(metrics, cfg, ctx.artifact("retrieval_recall.png"))
        if plot is not None:
            ctx.add_plot(plot, "HotpotQA support recall by number of units and by token budget")
    import json

    ctx.artifact("experiment_info.json").write_text(json.dumps(info, indent=1, default=str))
    return metrics
