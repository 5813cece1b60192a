"""BigCodeBench run: tasks -> (generation | samples file) -> ground truth -> sandboxed execution
(calibrated and raw) -> pass@k with CIs, breakdowns and the official results layout."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from solstice.core.types import MetricValue, Sample
from solstice.data.sources import file_sha256
from solstice.errors import BackendError, ConfigError
from solstice.models.base import GenParams
from solstice.papers.bigcodebench import evaluate as ev
from solstice.papers.bigcodebench import prompts, scoring
from solstice.papers.bigcodebench.config import Config
from solstice.papers.bigcodebench.sanitize import SANITIZE_VERSION, sanitize
from solstice.papers.bigcodebench.tasks import Task, data_source, load_tasks, select, summary
from solstice.report.plots import pyplot, save_figure, worth_drawing
from solstice.sandbox.deps import interpreter_info

log = logging.getLogger(__name__)


def datasets(cfg: Config) -> list:
    return [] if cfg.tasks_file else [data_source(cfg.version, cfg.subset)]


def _load(cfg: Config, ctx) -> tuple[list[Task], dict[str, Any]]:
    if cfg.tasks_file:
        path = Path(cfg.tasks_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"tasks_file '{cfg.tasks_file}' does not exist")
        meta = {"source": str(path), "version": cfg.version + " (user file)", "subset": cfg.subset}
    else:
        src = data_source(cfg.version, cfg.subset)
        path = ctx.dataset(src)
        meta = {"source": src.origin, "version": cfg.version, "subset": cfg.subset, "revision": src.revision}
    meta["sha256"] = file_sha256(path)
    return load_tasks(path), meta


def _generate(cfg: Config, ctx, tasks: list[Task]) -> dict[str, list[str]]:
    if cfg.n_samples > 1 and cfg.temperature <= 0:
        ctx.warn("n_samples > 1 with temperature 0 (greedy) repeats one sample; set temperature (paper: 0.8)")
    model = ctx.model("target")
    mode = prompts.request_mode(model, direct_completion=cfg.direct_completion, prefill=cfg.prefill)
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                       top_p=cfg.top_p if cfg.temperature > 0 else 1.0, n=cfg.n_samples, seed=ctx.seed)
    by_id = {t.task_id: t for t in tasks}

    def gen(batch: list[Sample]) -> list[dict[str, Any]]:
        reqs = [prompts.build_request(by_id[s.id], cfg.split, model, mode, strip_newlines=cfg.strip_newlines)
                for s in batch]
        stops = reqs[0][1]
        outs = model.generate([r[0] for r in reqs], params.replace(stop=stops))
        rows = []
        for s, comps in zip(batch, outs):
            task = by_id[s.id]
            rows.append({
                "task_id": s.id, "mode": mode,
                "raw": [c.text for c in comps],
                "solutions": [prompts.solution_from_output(task, c.text, mode, strip_newlines=cfg.strip_newlines)
                              for c in comps],
                "finish": [c.finish_reason for c in comps], "n_tokens": [c.n_tokens for c in comps],
            })
        return rows

    samples = [Sample(t.task_id, t.task_id) for t in tasks]
    rows = ctx.map(samples, gen, batch_size=cfg.gen_batch_size, key="gen", description="bigcodebench generate")
    with open(ctx.artifact("samples_sanitized.jsonl"), "w") as f:
        for r in rows:
            for sol, raw in zip(r["solutions"], r["raw"]):
                f.write(json.dumps({"task_id": r["task_id"], "solution": sol, "raw_solution": raw}) + "\n")
    ctx.stage("generation_info", lambda: {"mode": mode, "params": {k: getattr(params, k) for k in (
        "max_new_tokens", "temperature", "top_p", "n", "seed")}, "prompt_version": prompts.PROMPT_VERSION})
    return {r["task_id"]: r["solutions"] for r in rows}


def _gt_stage(cfg: Config, ctx, pool_fn, supported: list[Task], dataset_sha: str, interp: dict[str, Any]
              ) -> dict[str, Any]:
    shipped = ev.exclusions()
    if not cfg.check_gt:
        return {"checked": False, "results": {}}
    key = ev.environment_key(supported, cfg, dataset_sha, interp)
    results = ctx.stage("ground_truth", lambda: ev.ground_truth(pool_fn(), supported, cfg, key))
    same, diff = ev.same_environment(interp)
    info = ev.classify_gt(supported, results, shipped, same_env=same)
    info.update(checked=True, results=results, key=key, environment_differs=diff)
    if not same:
        ctx.warn(f"the shipped exclusion list was measured in another environment ({diff}); exclusions are "
                 "re-derived from this run's ground truth")
    rate = info["gt_pass_rate"]
    if supported and rate < cfg.gt_abort_below:
        lasts = [(d.strip().splitlines() or [r["status"]])[-1][:120] for r in results.values()
                 if r["status"] != "pass" for d in list(r["details"].values())[:1]]
        top = Counter(lasts).most_common(1)[0][0] if lasts else "unknown"
        cause = ev.diagnose(results, interp)
        raise BackendError(f"the execution environment looks broken: only {rate:.1%} of the canonical solutions pass "
                           f"(most common failure: {top})" + (f"; {cause}" if cause else "")
                           + "; fix the environment before scoring models")
    if rate < 0.99:
        ctx.warn(f"ground truth passes on {rate:.1%} of supported tasks ({len(info['failed_tasks'])} fail; "
                 f"{len(info['unexplained'])} not in the shipped exclusion list)")
    if info["unexplained"]:
        ctx.warn("canonical solutions fail here without a known reason: " + ", ".join(info["unexplained"][:20]))
    return info


def run(cfg: Config, ctx) -> dict[str, MetricValue]:
    all_tasks, dmeta = _load(cfg, ctx)
    if cfg.samples:
        rows = ev.read_samples(cfg.samples)
        pool_tasks = select(all_tasks, cfg.task_ids)
        covered = {r["task_id"] for r in rows}
        if cfg.partial:
            pool_tasks = [t for t in pool_tasks if t.task_id in covered]
        tasks = pool_tasks
        if cfg.sanitize_samples:
            for r in rows:
                if isinstance(r.get("solution"), str):
                    r["solution"] = sanitize(r["solution"], "task_func")
        solutions = ev.group_samples(rows, {t.task_id: t for t in tasks}, cfg.partial)
    else:
        tasks = ctx.limited(select(all_tasks, cfg.task_ids, cfg.pool, cfg.slice_size, seed=ctx.seed))
        solutions = None
    if not tasks:
        raise ConfigError("no tasks selected; check task_ids, pool and slice_size")
    python = cfg.python or sys.executable
    if cfg.python and not os.access(cfg.python, os.X_OK):
        raise ConfigError(f"python '{cfg.python}' is not an executable interpreter")
    # missing libraries are looked up in the interpreter that runs the samples (it may be a pinned env)
    interp = interpreter_info(python, {m for t in tasks for m in t.modules})
    lacking = set(interp["missing"])
    unsupported = {t.task_id: sorted(t.modules & lacking) for t in tasks if t.modules & lacking}
    supported = [t for t in tasks if t.task_id not in unsupported]
    if unsupported:
        ctx.warn(f"{len(unsupported)} of {len(tasks)} tasks need libraries that are not installed "
                 f"({', '.join(sorted({m for v in unsupported.values() for m in v})[:12])}); they are reported as "
                 f"unsupported (interpreter {python}); pip install 'solstice-llm[bigcodebench]' adds the scientific "
                 "tier, `solstice bigcodebench env` builds the official pinned environment")
    if solutions is None:
        solutions = _generate(cfg, ctx, supported)

    pool_box: list[Any] = []

    def pool():
        if not pool_box:
            from solstice.sandbox import SandboxPool

            pool_box.append(SandboxPool(ev.sandbox_config(cfg, ev.preload_for(supported, cfg.preload), python)))
            iso = pool_box[0].isolation
            log.info("sandbox isolation: %s", iso)
            for w in iso.get("warnings", []):
                ctx.warn(f"reduced sandbox isolation: {w} (--set isolation=strict refuses to run like this)")
        return pool_box[0]

    try:
        gt = _gt_stage(cfg, ctx, pool, supported, dmeta["sha256"], interp)
        if gt["checked"]:
            gt_ok = {tid for tid, r in gt["results"].items() if r["status"] == "pass"}
        else:
            gt_ok = {t.task_id for t in supported}
            ctx.warn("ground truth not checked (check_gt=false): every supported task is scored, so tasks that "
                     "cannot pass in this environment count as model failures")
        rows = _execute(cfg, ctx, pool, tasks, solutions, unsupported, gt, gt_ok)
        isolation = pool_box[0].isolation if pool_box else {}
    finally:
        if pool_box:
            pool_box[0].close()

    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    metrics, breakdown = scoring.score(by_task, tasks, gt_ok, ks=cfg.pass_k, calibration=cfg.calibration,
                                       seed=12345 + ctx.seed)
    if "pass@1" in metrics:  # the headline under the split's name, so claims of the other split stay unfilled
        metrics[f"pass@1_{cfg.split}"] = metrics["pass@1"]
    if cfg.calibration == "both":  # the calibration claim: calibrated minus uncalibrated, paired on the same tasks
        from solstice.metrics.stats import paired_difference_metric

        scored = [rs for tid, rs in by_task.items() if tid in gt_ok and "status_uncalibrated" in rs[0]]
        metrics["pass@1_calibration_gain"] = paired_difference_metric(
            [sum(r["status"] == "pass" for r in rs) / len(rs) for rs in scored],
            [sum(r["status_uncalibrated"] == "pass" for r in rs) / len(rs) for rs in scored],
            note="calibrated minus uncalibrated pass@1, paired on the same tasks")
    if gt["checked"]:
        metrics["gt_pass_rate"] = MetricValue(gt["gt_pass_rate"], gt["n"], None, True,
                                              "canonical solutions passing on supported tasks")
        metrics["gt_pass_rate_after_exclusions"] = MetricValue(
            gt["gt_pass_rate_after_exclusions"], gt["n"] - len(gt["explained"]), None, True,
            "canonical solutions passing once the failures the shipped exclusion list explains are left out")
    _report(cfg, ctx, tasks, by_task, metrics, breakdown, gt, dmeta, unsupported, isolation, interp)
    return metrics


def _execute(cfg, ctx, pool, tasks, solutions, unsupported, gt, gt_ok) -> list[dict[str, Any]]:
    by_id = {t.task_id: t for t in tasks}
    variants = {"both": ("cal", "raw"), "calibrated": ("cal",), "uncalibrated": ("raw",)}[cfg.calibration]
    samples = [Sample(f"{tid}#{i}", {"task_id": tid, "index": i})
               for t in tasks for tid in [t.task_id] for i in range(len(solutions.get(tid, [])) or 1)]

    def timeout_of(tid: str) -> float:
        d = gt["results"].get(tid, {}).get("duration") if gt["checked"] else None
        return max(cfg.timeout, 3 * d + 5) if d else cfg.timeout

    def units_of(s: Sample) -> list[ev.Unit]:
        tid, i = s.input["task_id"], s.input["index"]
        if tid in unsupported:
            return []
        sols = solutions.get(tid, [])
        sol = sols[i] if i < len(sols) else ""
        return [ev.Unit(f"{s.id}|{v}", by_id[tid], ev.calibrate(by_id[tid], sol) if v == "cal" else sol,
                        timeout_of(tid)) for v in variants]

    # One continuous queue over every sample still to run (no batch barrier: a worker takes the
    # next unit as soon as it is free); ctx.map asks for the samples in order, one at a time, so
    # the records are still written in order and a killed run resumes after the last one written.
    queue = ev.InOrder(pool, lambda first: [u for s in samples[first:] for u in units_of(s)])
    position = {s.id: i for i, s in enumerate(samples)}

    def execute(batch: list[Sample]) -> list[dict[str, Any]]:
        rows = []
        for s in batch:
            tid, i = s.input["task_id"], s.input["index"]
            sols = solutions.get(tid, [])
            row = {"task_id": tid, "sample_index": i, "solution": sols[i] if i < len(sols) else "",
                   "scored": tid in gt_ok}
            if tid in unsupported:
                row.update(status="unsupported", details={"ALL": "missing modules: " + ", ".join(unsupported[tid])},
                           **({"status_uncalibrated": "unsupported"} if len(variants) == 2 else {}))
            for u, res in queue.results(position[s.id], units_of(s)):
                primary = u.id.rsplit("|", 1)[1] == variants[0]
                key = "" if primary else "_uncalibrated"
                row[f"status{key}"] = res.status
                row[f"details{key}"] = ev.trim_details(res.details)
                if primary:
                    row.update(tests=res.tests, duration=round(res.duration, 3))
            rows.append(row)
        return rows

    try:
        return ctx.map(samples, execute, batch_size=1, key="exec", description="bigcodebench execute")
    finally:
        queue.close()


def _report(cfg, ctx, tasks, by_task, metrics, breakdown, gt, dmeta, unsupported, isolation, interp) -> None:
    p1, p1u = metrics.get("pass@1"), metrics.get("pass@1_uncalibrated")
    if p1 and p1u and not math.isnan(p1.value) and abs(p1.value - p1u.value) >= 0.01:
        ctx.warn(f"calibrated and uncalibrated pass@1 differ by {abs(p1.value - p1u.value) * 100:.1f} points "
                 "(the model's solutions omit imports or constants of the prompt)")
    statuses = Counter(r["status"] for rows in by_task.values() for r in rows)
    info = {
        "dataset": dmeta, "split": cfg.split, "subset": cfg.subset, "n_tasks": len(tasks),
        "n_samples": sum(len(v) for v in by_task.values()), "statuses": dict(statuses),
        "calibration": cfg.calibration, "calibration_rule": ev.CALIBRATION_VERSION,
        "sanitize_version": SANITIZE_VERSION, "prompt_version": prompts.PROMPT_VERSION,
        "exec_version": ev.EXEC_VERSION, "samples_file": cfg.samples or None,
        "sandbox": {"isolation": isolation, "workers": cfg.workers, "timeout_s": cfg.timeout,
                    "memory_mb": cfg.memory_mb},
        "ground_truth": {k: v for k, v in gt.items() if k != "results"},
        "unsupported": unsupported, "library_versions": interp["versions"],
        "interpreter": {k: interp[k] for k in ("executable", "python", "prefix")},
        "task_summary": summary(tasks),
    }
    if not cfg.samples:
        info["generation"] = json.loads((ctx.record.stages / "generation_info.json").read_text()) \
            if (ctx.record.stages / "generation_info.json").is_file() else {}
    ctx.artifact("summary.json").write_text(json.dumps(info, indent=1, default=str))
    ctx.artifact("eval_results.json").write_text(json.dumps(scoring.eval_results(by_task)))
    ctx.artifact("breakdown.json").write_text(json.dumps(breakdown, indent=1))
    ctx.artifact("breakdown.md").write_text(scoring.breakdown_markdown(breakdown))
    if gt["checked"]:
        ctx.artifact("ground_truth.json").write_text(json.dumps(gt["results"], indent=1))
    _plot(ctx, breakdown)


def _plot(ctx, breakdown: dict[str, Any]) -> None:
    doms = breakdown["domains"]
    if not doms or not worth_drawing([d["pass@1"] for d in doms.values()]):
        return  # no domain, or every domain at 0: the tables say it
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 2.6))
    names = list(doms)
    ax.bar(names, [doms[n]["pass@1"] * 100 for n in names], color="#4477aa")
    ax.set_ylabel("pass@1 (%)")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    path = save_figure(fig, ctx.artifact("pass_by_domain.png"), dpi=110)
    ctx.add_plot(path, "pass@1 by domain (tasks count in every domain they touch)")
