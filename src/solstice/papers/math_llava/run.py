"""MathVista testmini for any model, and the scorer's model-independent checks.

Stages: `responses` (one zero-shot response per problem, resumable through ctx.map; the figure
attached for a vision model, dropped for the blind baseline), `extractions` (only with the optional
`extractor` role: the official LLM extraction on the responses the rule cascade cannot parse), then scoring (lenient = official, strict
= unparsed MC answers wrong), breakdowns by every metadata field (artifact `breakdowns.json`) and the
reference baselines computed on all 1,000 items (oracle, analytic random, seeded random runs, first
option + 2).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.types import MetricValue, Sample
from solstice.data import DataSource
from solstice.errors import DataError
from solstice.metrics.stats import proportion_metric
from solstice.models import GenParams, user_message
from solstice.papers.math_llava import mathvista as mv
from solstice.papers.math_llava.config import Config

TESTMINI = DataSource(
    "mathvista-testmini", "mathvista/testmini.json",
    sha256="ab0148dca9d401c31cc47f29b3826eec28a76ff155a1c0878d81e8daf0413480", license="CC BY-SA 4.0 (MathVista; copy from HZQ950419/Math-LLaVA, Apache-2.0)",
    description="MathVista testmini annotations: 1,000 problems (images downloaded separately)")


def _rate(flags: list[bool], note: str = "") -> MetricValue:
    m = proportion_metric(flags, note=note)
    return MetricValue(m.value, m.n, m.ci95, True, m.note, "items" if m.ci95 else "")


def evenly(problems: list[mv.Problem], n: int) -> list[mv.Problem]:
    """n problems evenly spaced over the pid order (all when n >= len)."""
    if n >= len(problems):
        return list(problems)
    idx = np.linspace(0, len(problems) - 1, n).round().astype(int)
    return [problems[i] for i in sorted(set(idx.tolist()))]


def reference_checks(problems: list[mv.Problem], runs: int) -> dict[str, MetricValue]:
    """Model-independent scorer checks on every problem."""
    n = len(problems)

    def acc(responses: list[str]) -> float:
        return sum(r["correct"] for r in mv.score_responses(responses, problems)) / n

    gold = [f"({p.letters[p.choices.index(p.answer)]})" if p.question_type == "multi_choice" else p.answer
            for p in problems]
    out = {"oracle_acc": MetricValue(acc(gold), n, None, None, "gold letters / values through the scorer"),
           "random_analytic_acc": MetricValue(mv.analytic_random(problems), n, None, None,
                                              "sum over MC items of 1/|choices|, / 1000")}
    if runs:
        vals = []
        for s in range(runs):
            rng = random.Random(s)
            vals.append(acc([f"({rng.choice(p.letters)})" if p.choices else "" for p in problems]))
        out["random_runs_mean_acc"] = MetricValue(float(np.mean(vals)), runs, None, None,
                                                  f"mean of {runs} seeded uniform-random runs (sd {np.std(vals):.4f})")
    out["first_or_two_acc"] = MetricValue(acc([mv.first_option_or_two(p) for p in problems]), n, None, None,
                                          "first option for MC, '2' for free-form")
    return out


def extract_with_model(ctx, cfg: Config, problems: list[mv.Problem], responses: list[str]) -> dict[str, str]:
    """pid -> the extractor model's reply, for the responses the rule cascade cannot parse only.
    Resumable (ctx.map); with `--cache` the calls are cached on the extractor's fingerprint and the
    exact request, so a re-run with the same extractor asks nothing and another extractor misses."""
    model = ctx.model("extractor")
    params = GenParams(max_new_tokens=cfg.extractor_max_new_tokens, temperature=0.0)

    def ask(batch: list[Sample]) -> list[dict[str, Any]]:
        prompts = [[user_message(mv.extractor_request(s.input[1], s.input[0]))] for s in batch]
        return [{"llm_extraction": o[0].text} for o in model.generate(prompts, params)]

    todo = [Sample(problems[i].pid, (problems[i], responses[i])) for i in mv.cascade_failures(responses, problems)]
    got = ctx.map(todo, ask, batch_size=cfg.batch_size, key="extractions", roles=("target", "extractor"))
    return {s.id: r["llm_extraction"] for s, r in zip(todo, got, strict=True)}


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    problems = mv.load_testmini(ctx.dataset(TESTMINI))
    metrics = reference_checks(problems, cfg.random_runs)
    chosen = evenly(ctx.limited(problems), cfg.questions)
    root = Path(cfg.image_dir).expanduser() if cfg.images == "attach" else None
    if root is not None:
        missing = [p.image for p in chosen if not (root / p.image).is_file()]
        if missing:
            raise DataError(f"MathVista image '{root / missing[0]}' is missing ({len(missing)} of {len(chosen)})")
    else:
        ctx.warn("blind baseline: figures dropped; a lower bound, not a MathVista score of a vision model")
    note = "figure + query" if root else "BLIND (text-only): figures dropped"
    model = ctx.model("target")
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)

    def respond(batch: list[Sample]) -> list[dict[str, Any]]:
        prompts = [[user_message(mv.build_query(s.input), [root / s.input.image] if root else [])] for s in batch]
        return [{"response": o[0].text, "n_tokens": o[0].n_tokens, "finish_reason": o[0].finish_reason}
                for o in model.generate(prompts, params)]

    # A batch decodes until its longest response ends, so the map is fed in an order that keeps
    # like with like: multiple-choice items (answered with a letter) apart from free-form ones, and
    # prompts of similar length together (less padding). Records are keyed by pid, so resuming and
    # sharding are unaffected; the rows are put back in pid order below.
    order = sorted(chosen, key=lambda p: (p.question_type, len(mv.build_query(p)), int(p.pid) if p.pid.isdigit() else 0))
    got = ctx.map([Sample(p.pid, p) for p in order], respond, batch_size=cfg.batch_size, key="responses",
                  roles=("target",))
    by_pid = {p.pid: r for p, r in zip(order, got, strict=True)}
    rows = [by_pid[p.pid] for p in chosen]
    responses = [r["response"] for r in rows]
    llm = extract_with_model(ctx, cfg, chosen, responses) if ctx.has_model("extractor") else None
    scored = mv.score_responses(responses, chosen, llm)
    metrics["acc"] = _rate([r["correct"] for r in scored], f"{note}; official (lenient) scoring")
    metrics["acc_strict"] = _rate([r["correct_strict"] for r in scored], f"{note}; unparsed MC answers wrong")
    n_unparsed = sum(not r["parsed"] for r in scored)
    metrics["unparsed"] = MetricValue(n_unparsed / len(scored), len(scored), None, False,
                                      f"share of responses with no extractable answer: {n_unparsed} of {len(scored)}")
    failures = len(mv.cascade_failures(responses, chosen))
    decided = sum(r["extracted_by"] == "llm" for r in scored)
    metrics["llm_extracted"] = MetricValue(
        float(decided), len(scored), None, None,
        f"items the LLM extractor decided, of {failures} the rule cascade could not parse" if llm is not None
        else f"no LLM extractor (--model extractor=SPEC asks one on the {failures} rule-cascade failures)")
    if all("finish_reason" in r for r in rows):
        metrics["truncated"] = MetricValue(float(sum(r["finish_reason"] == "length" for r in rows)), len(rows), None,
                                           False, f"responses cut at max_new_tokens={cfg.max_new_tokens}")
    tables = {}
    for key in mv.BREAKDOWNS:
        tables[key] = mv.breakdown(scored, chosen, key)
    for key, values in mv.breakdown_flags(scored, chosen).items():  # every breakdown, with its CI
        if key != "task":  # the tasks are the acc_FQA ... metrics below
            for value, flags in values.items():
                metrics[f"acc[{key}={value}]"] = _rate(flags, f"{note}; {key} = {value}")
    for task, abbr in mv.TASK_ABBR.items():
        flags = [r["correct"] for r, p in zip(scored, chosen) if p.metadata.get("task") == task]
        if flags:
            metrics[f"acc_{abbr}"] = _rate(flags, f"{note}; task {abbr}")
    ctx.artifact("breakdowns.json").write_text(json.dumps(tables, indent=1))
    if cfg.pipeline_figures:
        from solstice.papers.math_llava.pipeline import run_pipeline

        pm, data, info, chosen = run_pipeline(cfg.pipeline_figures, ctx.seed, select=min(cfg.select_images, cfg.pipeline_figures),
                                      banned=[p.question for p in problems])
        metrics.update(pm)
        ctx.artifact("mathv_synthetic.json").write_text(json.dumps(data, indent=1))
        for fid, img in chosen.items():  # the images the JSON refers to (train.py --images)
            img.save(ctx.artifact(f"figures/{fid}.png"))
        ctx.artifact("pipeline.json").write_text(json.dumps(info, indent=1, default=float))
    if cfg.model_synthesis_figures:
        from solstice.models import CAP_VISION
        from solstice.papers.math_llava.pipeline import model_synthesis

        def synthesise() -> dict[str, Any]:  # a stage: a resumed or rescored run does not ask the model again
            mm, mdata = model_synthesis(model, cfg.model_synthesis_figures, ctx.seed,
                                        vision=CAP_VISION in model.capabilities)
            return {"metrics": {k: v.to_json() for k, v in mm.items()}, "data": mdata}

        got = ctx.stage("model_synthesis", synthesise, roles=("target",))
        metrics.update({k: MetricValue.from_json(v) for k, v in got["metrics"].items()})
        mdata = got["data"]
        ctx.artifact("model_synthetic.json").write_text(json.dumps(mdata, indent=1))
    ctx.artifact("scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored))
    return metrics
