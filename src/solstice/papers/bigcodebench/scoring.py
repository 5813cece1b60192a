"""From per-sample status rows to BigCodeBench metrics: pass@k (calibrated and raw), coverage,
per-domain / per-library / per-tier breakdowns and the official eval_results layout."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from solstice.core.types import MetricValue
from solstice.metrics.passk import pass_at_k, pass_at_k_metric, valid_ks
from solstice.metrics.stats import proportion_metric
from solstice.papers.bigcodebench.tasks import DOMAINS, Task, tier


def _counts(rows: list[dict[str, Any]], field: str) -> tuple[int, int]:
    return len(rows), sum(r.get(field) == "pass" for r in rows)


def score(
    by_task: dict[str, list[dict[str, Any]]], tasks: list[Task], scored: set[str], *, ks: list[int],
    calibration: str, seed: int = 12345,
) -> tuple[dict[str, MetricValue], dict[str, Any]]:
    """The headline `pass@k` is over every selected task, as the leaderboard's denominator is:
    a task that is unsupported here or whose ground truth fails here counts as failed (all its
    samples fail). `pass@k_supported` beside it is over the scored tasks only (supported here
    and, when checked, with a passing ground truth). Leaderboard comparisons use the former."""
    primary = "status"
    has_raw = calibration == "both"
    tmap = {t.task_id: t for t in tasks}
    scored_ids = [t.task_id for t in tasks if t.task_id in scored and by_task.get(t.task_id)]
    counts = [_counts(by_task[tid], primary) for tid in scored_ids]

    n_default = max((len(v) for v in by_task.values()), default=1)

    def every_task(field: str) -> list[tuple[int, int]]:
        return [_counts(by_task[t.task_id], field) if t.task_id in scored and by_task.get(t.task_id)
                else (len(by_task.get(t.task_id, [])) or n_default, 0) for t in tasks]

    metrics: dict[str, MetricValue] = {}
    all_counts = every_task(primary)
    kk = valid_ks(counts, ks)
    for k in valid_ks(all_counts, ks):  # the primary status: calibrated unless calibration == "uncalibrated"
        metrics[f"pass@{k}"] = pass_at_k_metric(all_counts, k, seed=seed, note=(
            "every selected task; unsupported and environment-failed tasks count as failed (leaderboard denominator)"))
    for k in kk:
        metrics[f"pass@{k}_supported"] = pass_at_k_metric(counts, k, seed=seed, note=(
            "only the tasks scored here (supported, ground truth passing); not comparable with the leaderboard"))
    if has_raw:
        raw_all = every_task("status_uncalibrated")
        raw = [_counts(by_task[tid], "status_uncalibrated") for tid in scored_ids]
        for k in valid_ks(raw_all, ks):
            metrics[f"pass@{k}_uncalibrated"] = pass_at_k_metric(raw_all, k, seed=seed)
        for k in valid_ks(raw, ks):
            metrics[f"pass@{k}_uncalibrated_supported"] = pass_at_k_metric(raw, k, seed=seed)
    metrics["coverage"] = MetricValue(len(scored_ids) / len(tasks) if tasks else math.nan, len(tasks), None, True,
                                      "share of selected tasks that are scored here")
    executed = [r for tid in by_task for r in by_task[tid] if r.get("status") != "unsupported"]
    if executed:
        metrics["timeout_rate"] = proportion_metric([r["status"] == "timeout" for r in executed],
                                                    higher_is_better=False, seed=seed)
        metrics["error_rate"] = proportion_metric([r["status"] == "error" for r in executed],
                                                  higher_is_better=False, seed=seed)
    per_task = {tid: pass_at_k(*_counts(by_task[tid], primary), 1) for tid in scored_ids}
    if kk:
        for dom in DOMAINS:
            vals = [(n, c) for tid, (n, c) in zip(scored_ids, counts) if dom in tmap[tid].domains]
            if vals:
                metrics[f"pass@1/{dom}"] = pass_at_k_metric(vals, 1, seed=seed)
    breakdown = {
        "domains": _group(per_task, lambda t: t.domains, tmap),
        "libraries": _group(per_task, lambda t: t.libs, tmap),
        "tiers": _group(per_task, lambda t: (tier(t),), tmap),
        "tasks": {tid: {"pass@1": v, "n": len(by_task[tid])} for tid, v in per_task.items()},
    }
    return metrics, breakdown


def _group(per_task: dict[str, float], keys, tmap: dict[str, Task]) -> dict[str, dict[str, float]]:
    acc: dict[str, list[float]] = defaultdict(list)
    for tid, v in per_task.items():
        for key in keys(tmap[tid]):
            acc[key].append(v)
    return {k: {"pass@1": sum(v) / len(v), "n_tasks": len(v)} for k, v in sorted(acc.items())}


def eval_results(by_task: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The official evaluator's layout: {"date", "eval": {task_id: [{task_id, solution, status, details}]}}."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "eval": {tid: [{"task_id": tid, "solution": r.get("solution", ""), "status": r["status"],
                        "details": r.get("details", {})} for r in rows] for tid, rows in by_task.items()},
    }


def breakdown_markdown(breakdown: dict[str, Any], top: int = 25) -> str:
    out = ["| domain | pass@1 | tasks |", "|---|---|---|"]
    out += [f"| {k} | {v['pass@1'] * 100:.1f} | {v['n_tasks']} |" for k, v in breakdown["domains"].items()]
    out += ["", "| library | pass@1 | tasks |", "|---|---|---|"]
    libs = sorted(breakdown["libraries"].items(), key=lambda kv: -kv[1]["n_tasks"])[:top]
    out += [f"| {k} | {v['pass@1'] * 100:.1f} | {v['n_tasks']} |" for k, v in libs]
    return "\n".join(out) + "\n"
