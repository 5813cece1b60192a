"""Executing BigCodeBench programs in the sandbox: calibration, ground truth (cached), shipped
exclusions, samples files, and the per-sample status rows."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError
from solstice.papers.bigcodebench.tasks import Task, tier
from solstice.sandbox import ExecResult, Job, SandboxConfig, SandboxPool

log = logging.getLogger(__name__)

EXEC_VERSION = "bigcodebench-exec-1"
CALIBRATION_VERSION = "code_prompt + '\\n    pass\\n' + solution (reference calibration)"
DETAIL_CAP = 2000
# Imported once per sandbox worker (and then shared by every forked sample) when the selected tasks
# use the package: the import time of these dominates the run time of most tasks.
DEFAULT_PRELOAD = ("numpy", "pandas", "matplotlib", "matplotlib.pyplot", "scipy.stats", "seaborn",
                   "sklearn.preprocessing", "sklearn.model_selection", "sklearn.linear_model", "sklearn.cluster",
                   "sklearn.decomposition")


def calibrate(task: Task, solution: str) -> str:
    """The reference calibration: re-insert the prompt's imports and constants and a stub entry
    point that the model's own later definition overrides."""
    return task.code_prompt + "\n    pass\n" + solution


def gt_solution(task: Task) -> str:
    return task.complete_prompt + "\n" + task.canonical_solution


def program(solution: str, task: Task) -> str:
    return solution + "\n" + task.test


def exclusions() -> dict[str, dict[str, str]]:
    """The shipped list of tasks whose canonical solution fails in a standard environment, with
    the reason (network, root, flaky, Python version, library version, missing data)."""
    text = resources.files("solstice.papers.bigcodebench").joinpath("exclusions.json").read_text()
    return json.loads(text)["tasks"]


# Shipped exclusions that hold in any environment; the others (library or Python versions, data
# files) are re-derived from the ground-truth run when the environment differs from the list's.
ENV_INDEPENDENT = ("network", "root", "slow", "flaky")


def shipped_environment() -> dict[str, Any]:
    text = resources.files("solstice.papers.bigcodebench").joinpath("exclusions.json").read_text()
    return json.loads(text).get("environment", {})


def same_environment(interp: dict[str, Any]) -> tuple[bool, str]:
    """Whether the samples' interpreter matches the environment the shipped list was measured
    in (Python major.minor and the major.minor of its key libraries); else what differs."""
    env = shipped_environment()
    diffs = []
    if not interp.get("python", "").startswith(env.get("python", "?") + "."):
        diffs.append(f"Python {interp.get('python')} (list: {env.get('python')})")
    for lib, want in env.get("libraries", {}).items():
        have = interp.get("versions", {}).get(lib)
        if have is not None and ".".join(have.split(".")[:2]) != want:
            diffs.append(f"{lib} {have} (list: {want})")
    return not diffs, ", ".join(diffs)


def sandbox_config(cfg: Any, preload: Iterable[str] = DEFAULT_PRELOAD, python: str = "") -> SandboxConfig:
    return SandboxConfig(
        workers=cfg.workers, timeout=cfg.timeout, memory_mb=cfg.memory_mb, preload=tuple(preload),
        network_namespace=cfg.isolate_network, drop_privileges=cfg.drop_privileges,
        python=python or sys.executable, strict=getattr(cfg, "isolation", "best") == "strict",
    )


def preload_for(tasks: Iterable[Task], wanted: Iterable[str]) -> tuple[str, ...]:
    """Preload only what the selected tasks use (a stdlib slice starts its workers instantly)."""
    used = {m for t in tasks for m in t.third_party}
    return tuple(m for m in wanted if m.split(".")[0] in used)


def _expected_cost(task: Task) -> int:
    return {"extended": 0, "core": 1, "stdlib": 2}[tier(task)]


@dataclass
class Unit:
    id: str
    task: Task
    solution: str
    timeout: float


def run_units(pool: SandboxPool, units: list[Unit], on_result: Callable[[Unit, ExecResult], None] | None = None
              ) -> dict[str, ExecResult]:
    """Execute units (heaviest tiers first, for load balance); results by unit id."""
    by_id = {u.id: u for u in units}
    order = sorted(units, key=lambda u: (_expected_cost(u.task), u.task.number))
    jobs = [Job(u.id, program(u.solution, u.task), timeout=u.timeout) for u in order]
    out = {}
    for res in pool.run(jobs):
        out[res.id] = res
        if on_result:
            on_result(by_id[res.id], res)
    return out


class InOrder:
    """A continuous work queue with in-order hand-back. On the first request (for the unit list
    from position `first` onwards) every unit goes to the pool at once, so both workers stay busy;
    `results(first, units)` returns the results of `units`, reading the pool's completion-order
    stream and keeping results that arrive early until they are asked for."""

    def __init__(self, pool_fn: Callable[[], SandboxPool], units_from: Callable[[int], list[Unit]]) -> None:
        self.pool_fn, self.units_from = pool_fn, units_from
        self.stream = None
        self.early: dict[str, ExecResult] = {}
        self.by_id: dict[str, Unit] = {}

    def results(self, position: int, units: list[Unit]) -> list[tuple[Unit, ExecResult]]:
        if not units:
            return []
        if self.stream is None:
            todo = self.units_from(position)
            self.by_id = {u.id: u for u in todo}
            self.stream = self.pool_fn().run([Job(u.id, program(u.solution, u.task), timeout=u.timeout) for u in todo])
        out = []
        for u in units:
            if u.id not in self.by_id:  # ctx.map asks in order, so every later unit is queued
                raise RuntimeError(f"{u.id} was asked for but is not in the work queue")
            while u.id not in self.early:
                res = next(self.stream, None)
                if res is None:
                    raise RuntimeError(f"the sandbox pool returned no result for {u.id}")
                self.early[res.id] = res
            out.append((u, self.early.pop(u.id)))
        return out

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def trim_details(details: dict[str, str]) -> dict[str, str]:
    return {k: (v if len(v) <= DETAIL_CAP else "..." + v[-DETAIL_CAP:]) for k, v in details.items()}


# -- ground truth ---------------------------------------------------------------------------------
def environment_key(tasks: list[Task], cfg: Any, dataset_sha: str, interp: dict[str, Any]) -> str:
    """What the canonical results depend on: dataset, the samples' interpreter and the versions of
    the libraries the tasks import in it, the limits and this harness."""
    blob = json.dumps({"data": dataset_sha, "python": interp.get("python"), "executable": interp.get("executable"),
                       "libs": interp.get("versions", {}), "timeout": cfg.timeout,
                       "memory": cfg.memory_mb, "exec": EXEC_VERSION, "root": os.geteuid() == 0,
                       "network": cfg.isolate_network, "drop": cfg.drop_privileges}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _gt_cache_path(key: str) -> Path:
    base = Path(os.environ.get("SOLSTICE_CACHE", Path.home() / ".cache" / "solstice"))
    return base / "bigcodebench" / f"ground-truth-{key}.json"


def ground_truth(pool: SandboxPool, tasks: list[Task], cfg: Any, key: str, use_cache: bool = True
                 ) -> dict[str, dict[str, Any]]:
    """Run every task's canonical solution once per environment (cached on disk by `key`)."""
    path = _gt_cache_path(key)
    cached: dict[str, dict[str, Any]] = {}
    if use_cache and path.is_file():
        try:
            cached = json.loads(path.read_text())["tasks"]
        except (OSError, ValueError, KeyError):
            cached = {}
    todo = [t for t in tasks if t.task_id not in cached]
    if todo:
        t0 = time.perf_counter()
        units = [Unit(t.task_id, t, gt_solution(t), cfg.timeout) for t in todo]
        for uid, res in run_units(pool, units).items():
            cached[uid] = {"status": res.status, "details": trim_details(res.details), "duration": res.duration}
        log.info("ground truth of %d tasks in %.1fs", len(todo), time.perf_counter() - t0)
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_text(json.dumps({"key": key, "tasks": cached}))
            tmp.replace(path)
    return {t.task_id: cached[t.task_id] for t in tasks}


def classify_gt(tasks: list[Task], gt: dict[str, dict[str, Any]], shipped: dict[str, dict[str, str]],
                same_env: bool = True) -> dict[str, Any]:
    """Ground-truth summary: pass rate on supported tasks and every failure with its reason. In
    the environment the shipped list was measured in, its entries explain failures; elsewhere
    only its environment-independent entries do, and every failure gets its reason re-derived
    from this run (the failure's last line) instead of the shipped one."""
    failed = {tid: r for tid, r in gt.items() if r["status"] != "pass"}
    usable = shipped if same_env else {k: v for k, v in shipped.items() if v.get("category") in ENV_INDEPENDENT}
    explained = {tid: usable[tid] for tid in failed if tid in usable}
    unexplained = sorted(set(failed) - set(explained), key=lambda x: int(x.rsplit("/", 1)[1]))
    n = len(gt)
    derived = {tid: {"status": r["status"], "reason": _last_line(r)} for tid, r in failed.items()}
    return {
        "n": n, "passed": n - len(failed), "gt_pass_rate": (n - len(failed)) / n if n else float("nan"),
        "failed_tasks": sorted(failed, key=lambda x: int(x.rsplit("/", 1)[1])),
        "explained": explained, "unexplained": unexplained, "derived_exclusions": derived,
        "exclusions_source": "shipped list (measured in this environment)" if same_env else
        "re-derived from this run's ground truth (the shipped list was measured elsewhere; only its "
        + "/".join(ENV_INDEPENDENT) + " entries are used)",
        "gt_pass_rate_after_exclusions": (n - len(failed)) / (n - len(explained)) if n - len(explained) else float("nan"),
    }


def _last_line(r: dict[str, Any]) -> str:
    for d in r.get("details", {}).values():
        lines = [x for x in d.strip().splitlines() if x.strip()]
        if lines:
            return lines[-1][:200]
    return r.get("status", "")


_MISSING = re.compile(r"(?:ModuleNotFoundError|ImportError): (?:No module named|cannot import name \S+ from) '?([\w.]+)'?")


def diagnose(gt: dict[str, dict[str, Any]], interp: dict[str, Any]) -> str:
    """The likely cause of a broken environment, naming the module and the path: a module the
    samples' interpreter lacks, or one it has outside the sandbox that jobs cannot import."""
    counts: dict[str, int] = {}
    for r in gt.values():
        for d in r.get("details", {}).values():
            m = _MISSING.search(d)
            if m:
                top = m.group(1).split(".")[0]
                counts[top] = counts.get(top, 0) + 1
                break
    if not counts:
        return ""
    mod, n = max(counts.items(), key=lambda kv: kv[1])
    py = interp.get("executable", "?")
    if mod in interp.get("missing", []):
        return f"{n} canonical solutions fail to import '{mod}', which {py} does not have (install it there)"
    origin = interp.get("origins", {}).get(mod) or "?"
    return (f"{n} canonical solutions fail to import '{mod}', which {py} imports outside the sandbox from {origin}: "
            f"the sandbox hides that path (see the isolation report's filesystem entries)")


# -- samples files ----------------------------------------------------------------------------------
def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Samples in the official format: one JSON object per line with `task_id` and `solution`
    (self-contained) or `completion` (appended to the task's complete_prompt); a task id may
    repeat (several samples). Plain or gzipped jsonl."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"samples file '{path}' does not exist")
    opener = gzip.open if p.name.endswith(".gz") else open
    rows = []
    try:
        with opener(p, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise DataError(f"{p.name} line {i}: not valid JSON") from None
                if not isinstance(row, dict) or "task_id" not in row:
                    raise DataError(f"{p.name} line {i}: a sample needs a 'task_id'")
                if not isinstance(row.get("solution", row.get("completion")), str):
                    raise DataError(f"{p.name} line {i}: a sample needs a 'solution' or 'completion' string")
                rows.append(row)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read samples file {p}: {exc}") from None
    if not rows:
        raise DataError(f"samples file {p} holds no samples")
    return rows


def solution_of(task: Task, row: dict[str, Any]) -> str:
    if isinstance(row.get("solution"), str):
        return row["solution"]
    return task.complete_prompt + row["completion"]


def group_samples(rows: list[dict[str, Any]], tasks: dict[str, Task], partial: bool) -> dict[str, list[str]]:
    """task id -> solutions, in file order. Unknown task ids are an error; tasks without a sample
    are an error unless `partial` (then only the covered tasks are scored)."""
    out: dict[str, list[str]] = {}
    unknown = sorted({r["task_id"] for r in rows if r["task_id"] not in tasks})
    if unknown:
        raise DataError(f"samples name {len(unknown)} task id(s) not in the selected tasks, e.g. {unknown[0]}; "
                        "check the dataset version/subset or the task selection")
    for r in rows:
        out.setdefault(r["task_id"], []).append(solution_of(tasks[r["task_id"]], r))
    missing = [t for t in tasks if t not in out]
    if missing and not partial:
        raise DataError(f"the samples cover {len(out)} of {len(tasks)} selected tasks (e.g. {missing[0]} has none); "
                        "every task needs at least one sample; pass --set partial=true to score only the covered tasks")
    return out
