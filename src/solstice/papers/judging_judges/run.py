"""Run: (1) agreement analysis of the released verdicts, (2) optional check of the question
selection against a local TriviaQA, (3) the synthetic exam judged by lexical baselines and the
live judge, (4) generated verdicts through the text parser, (5) the vulnerability probes."""

from __future__ import annotations

import json
import logging
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.errors import DataError
from solstice.judge.correctness import CorrectnessJudge
from solstice.judge.lexical import LexicalJudge
from solstice.judge.templates import TEMPLATES
from solstice.metrics import proportion_metric
from solstice.papers.judging_judges import analysis, probes
from solstice.papers.judging_judges.config import Config
from solstice.papers.judging_judges.data import RELEASES, load_release
from solstice.papers.judging_judges.exam import KINDS, build_exam

log = logging.getLogger(__name__)


def _release(cfg: Config, ctx) -> tuple[Any, dict[str, MetricValue]]:
    rel = load_release(ctx.dataset(RELEASES[cfg.release]), cfg.release)
    res = ctx.stage(f"release_{cfg.release}", lambda: analysis.analyze_release(rel, n_resamples=cfg.n_resamples),
                    roles=())
    ctx.artifact("release_agreement.json").write_text(json.dumps(res, indent=1))
    table = analysis.judges_table(res)
    ctx.artifact("judges_table.md").write_text(table + "\n\n" + analysis.scores_table(res) + "\n")
    plot = ctx.artifact("kappa_vs_pa.png")
    analysis.plot_kappa_vs_pa(res, plot)
    ctx.add_plot(plot, f"released {cfg.release} verdicts: Cohen's kappa vs percent agreement per judge")
    if cfg.release == "v2":
        ctx.warn("v2 is an auxiliary run (other exam prompt, gpt-4t rows duplicated, suspicious JudgeLM/Gemma columns); v1 is the paper's main data")
    return rel, analysis.release_metrics(res)


def _selection(cfg: Config, rel, ctx) -> dict[str, MetricValue]:
    """Rebuild the 400-question selection from a local TriviaQA and compare it with the release."""
    from pathlib import Path

    from solstice.papers.judging_judges.exam import (
        exam_prompt,
        fewshot_indices,
        parse_fewshot,
        references_of,
        select_questions,
    )

    path = Path(cfg.triviaqa_path).expanduser()
    if not path.exists():
        raise DataError(f"triviaqa_path '{path}' does not exist (a datasets folder saved with save_to_disk)")
    try:
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        val, train = ds["validation"], ds["train"]
    except Exception as exc:  # any datasets error: not a saved DatasetDict with both splits
        raise DataError(f"cannot read TriviaQA from '{path}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    idx = select_questions(val)
    ours = [val[i]["question"] for i in idx]
    released = set(rel.questions)
    fewshot = [(train[i]["question"], train[i]["answer"]["value"]) for i in fewshot_indices(len(train))]
    base_rows = [r for r in rel.rows if r["response"].startswith("Q:")][:50]
    same_prompt = [exam_prompt(r["question"], fewshot) == r["response"] for r in base_rows]
    refs_ok = [len(references_of(val[i])) <= 10 for i in idx]
    ctx.artifact("selection.json").write_text(json.dumps({"questions": ours, "fewshot": fewshot,
                                                          "released_fewshot": parse_fewshot(base_rows[0]["response"])}))
    return {
        "selection_overlap": proportion_metric([q in released for q in ours], note="selected questions found in the release"),
        "selection_fewshot_prompt_match": proportion_metric(same_prompt, note="released base prompts rebuilt exactly"),
        "selection_max_refs_ok": proportion_metric(refs_ok),
    }


def _judge_fn(judge):
    def fn(batch: list[Sample]) -> list[dict[str, Any]]:
        return [probes.record(v) for v in judge.judge([s.input for s in batch])]
    return fn


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    rel, metrics = _release(cfg, ctx)
    if cfg.triviaqa_path:
        metrics.update(_selection(cfg, rel, ctx))

    # -- the synthetic exam -------------------------------------------------------------------------
    refs = {}
    for r in rel.rows:
        refs.setdefault(r["question"], r["references"])
    questions = list(refs.items())[: cfg.exam_questions]
    exam = [it.to_json() for it in build_exam(questions, seed=cfg.exam_seed)]
    exam = ctx.limited(exam)
    ctx.artifact("exam.jsonl").write_text("".join(json.dumps(it) + "\n" for it in exam))
    samples = [Sample(it["id"], it, it["label"]) for it in exam]
    n = cfg.n_resamples
    judges_for_plot = []
    for rule in ("em", "contains", "contains_words"):
        lex = LexicalJudge(rule, cased=cfg.lexical_cased)
        recs = [probes.record(v) for v in lex.judge(exam)]
        metrics.update(probes.verdict_metrics(recs, exam, f"{rule}_", n_resamples=n))
        if rule != "contains_words":
            judges_for_plot.append((rule, f"{rule}_"))

    model = ctx.model("judge")
    cache = ctx.artifact("judge_cache.sqlite")
    main = CorrectnessJudge(model, cfg.judge_template, mode=cfg.judge_mode, cache=cache,
                            max_new_tokens=cfg.max_new_tokens, exact_labels=cfg.exact_labels)
    if main.mode == "generate":
        ctx.warn(f"the judge model offers no label log-probabilities here; verdicts are generated text (mode={main.mode})")
    recs = ctx.map(samples, _judge_fn(main), batch_size=cfg.batch_size, key="exam", description="live judge")
    metrics.update(probes.verdict_metrics(recs, exam, "live_", n_resamples=n))
    judges_for_plot.insert(0, (f"live judge ({main.mode})", "live_"))

    # -- generated verdicts through the paper's text parser --------------------------------------------
    if cfg.generate_items and main.mode == "logprobs":
        gen = CorrectnessJudge(model, cfg.judge_template, mode="generate", cache=cache, max_new_tokens=cfg.max_new_tokens)
        k = min(cfg.generate_items, len(samples))
        grecs = ctx.map(samples[:k], _judge_fn(gen), batch_size=cfg.batch_size, key="generate", description="generated verdicts")
        metrics.update(probes.verdict_metrics(grecs, exam[:k], "gen_", n_resamples=n, full=False))
        agree = [g["value"] == r["value"] for g, r in zip(grecs, recs[:k]) if g["parsed"]]
        metrics["gen_vs_logprob_agreement"] = proportion_metric(agree, note="parsed generated verdicts equal to the log-prob verdict")
        ctx.artifact("generated_verdicts.json").write_text(json.dumps(
            [{"id": s.id, "response": s.input["response"], "label": s.target, "text": g["raw"], "parsed": g["parsed"]}
             for s, g in zip(samples[:k], grecs)], indent=1))

    # -- probes ------------------------------------------------------------------------------------------
    if cfg.probe_questions:
        pitems = probes.probe_items(exam, cfg.probe_questions)
        by_id = {r["sample_id"]: r for r in recs}
        base = [by_id[it["id"]] for it in pitems if it["id"] in by_id]
        if len(base) == len(pitems):
            metrics.update(_probes(cfg, ctx, model, cache, main.mode, pitems, base, questions))
    kinds = [k for k in KINDS if any(it["kind"] == k for it in exam)]
    plot = ctx.artifact("acceptance.png")
    probes.acceptance_plot(metrics, judges_for_plot, kinds, plot)
    ctx.add_plot(plot, "synthetic exam: share of each answer kind judged correct")
    tpl = ctx.artifact("template_probe.json")
    rows = json.loads(tpl.read_text()) if tpl.is_file() else []
    ctx.artifact("live_tables.md").write_text(probes.live_tables(metrics, kinds, rows) + "\n")
    return metrics


def _probes(cfg: Config, ctx, model, cache, mode: str, pitems, base, questions) -> dict[str, MetricValue]:
    n = cfg.n_resamples
    out: dict[str, MetricValue] = {}
    psamples = [Sample(it["id"], it, it["label"]) for it in pitems]

    def judged(key: str, **kw) -> list[dict[str, Any]]:
        j = CorrectnessJudge(model, kw.pop("template", cfg.judge_template), mode=mode, cache=cache,
                             max_new_tokens=cfg.max_new_tokens, exact_labels=cfg.exact_labels, **kw)
        return ctx.map(psamples, _judge_fn(j), batch_size=cfg.batch_size, key=key, description=f"probe {key}")

    rows = []
    for t in cfg.probe_templates:
        recs = base if t == cfg.judge_template else judged(f"tpl_{t}", template=t)
        m = probes.verdict_metrics(recs, pitems, f"tpl_{t}_", n_resamples=n, full=False)
        out.update(m)
        k = m[f"tpl_{t}_kappa"]
        text = TEMPLATES[t].format(question="", references="", response="", extract_tag="evaluation")
        rows.append({"template": t, "tokens": model.count_tokens(text), "kappa": k.value, "ci": k.ci95})
    if rows:
        ctx.artifact("template_probe.json").write_text(json.dumps(rows, indent=1))
        plot = ctx.artifact("template_length.png")
        probes.template_length_plot(rows, plot)
        ctx.add_plot(plot, "live judge: kappa per judge template vs template length (guideline-length probe)")

    noref = judged("noref", template="NO_REFERENCE")
    out.update(probes.verdict_metrics(noref, pitems, "noref_", n_resamples=n, full=False))
    rev = judged("refs_reversed", reference_order="reversed")
    out.update(probes.verdict_metrics(rev, pitems, "reversed_", n_resamples=n, full=False))
    out.update(probes.flip_metrics(base, rev, "reforder_"))

    # answer length: incorrect answers wrapped in the same verbose sentence as correct_verbose
    qids = {it["qid"] for it in pitems}
    verbose = [it.to_json() for it in build_exam(questions, seed=cfg.exam_seed, kinds=("incorrect", "incorrect_verbose"))
               if it.meta["qid"] in qids]
    for it in verbose:
        it["id"] = f"len-{it['id']}"
    vsamples = [Sample(it["id"], it, it["label"]) for it in verbose]
    j = CorrectnessJudge(model, cfg.judge_template, mode=mode, cache=cache, max_new_tokens=cfg.max_new_tokens,
                         exact_labels=cfg.exact_labels)
    vrecs = ctx.map(vsamples, _judge_fn(j), batch_size=cfg.batch_size, key="length", description="probe length")
    out.update(probes.verdict_metrics(vrecs, verbose, "length_", n_resamples=n, full=False))
    lexical = LexicalJudge("contains", cased=cfg.lexical_cased)
    out.update(probes.verdict_metrics([probes.record(v) for v in lexical.judge(verbose)], verbose, "length_contains_",
                                      n_resamples=n, full=False))
    return out
