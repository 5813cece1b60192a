"""`--executor ray` against in-process on the same samples, on a local Ray cluster that this script
starts (2 worker processes), sides alternated in one run.

    python bench/bench_ray_executor.py [--tasks 48] [--rounds 2] [--gen 16]

1. Sandbox work: BigCodeBench ground truth on a stratified stdlib slice (shipped exclusions left
   out) given as a samples file (the canonical solutions), uncalibrated, no separate ground-truth
   stage: only the `exec` map runs. In-process: one sandbox pool of 2 slots (batches of 16).
   Ray: 2 actors, each with a sandbox pool of 1 slot (batches of 8).
2. Generation: the toy paper (tests/toy_paper.py) on the default model, GEN items, batches of 4.
   In-process: one model; Ray: 2 actors, each loading the model once (1 CPU each).

Records must be identical (minus the wall time of each execution); the overhead is the map's wall
time under Ray over in-process (run.json "maps"), the cluster's start-up and the actors' model loading (before the map) reported apart. Needs
SOLSTICE_DATA and the `ray` extra. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def _stable(rows):
    return [{k: v for k, v in r.items() if k != "duration"} for r in rows]


def _map_wall(path: Path, key: str) -> float:
    return json.loads((path / "run.json").read_text())["maps"][key]["wall_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--only", choices=("all", "sandbox", "generation"), default="all")
    args = ap.parse_args()
    if not os.environ.get("SOLSTICE_DATA"):
        print("SOLSTICE_DATA is not set; skipping")
        return 0
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    os.environ["SOLSTICE_PLUGINS"] = "toy_paper:PAPER"
    os.environ["SOLSTICE_RAY_WORKERS"] = "2"
    os.environ.setdefault("SOLSTICE_PROGRESS", "0")
    import ray

    from solstice.core.records import RunRecord
    from solstice.core.runner import run_paper
    from solstice.data.sources import resolve
    from solstice.papers.bigcodebench.evaluate import exclusions, gt_solution
    from solstice.papers.bigcodebench.tasks import data_source, load_tasks, stratified

    (ROOT / "runs").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ray-", dir=ROOT / "runs"))
    tasks = load_tasks(resolve(data_source("v0.1.0_hf", "full")))
    pool = [t for t in tasks if not t.third_party and t.task_id not in exclusions()]
    picked = stratified(pool, args.tasks, seed=7)
    samples = work / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t.task_id, "solution": gt_solution(t)}) + "\n" for t in picked))
    ids = ",".join(t.task_id.rsplit("/", 1)[1] for t in picked)
    common = [f"task_ids={ids}", f"samples={samples}", "timeout=60", "calibration=uncalibrated", "check_gt=false"]

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    print(f"local Ray cluster (num_cpus=2) started in {time.perf_counter() - t0:.1f}s")

    def bcb(side: str, r: int):
        ex, workers = ("ray", 1) if side == "ray" else ("local", 2)
        t = time.perf_counter()
        res = run_paper("bigcodebench", out=work / f"bcb-{side}-{r}", sets=common + [f"workers={workers}"],
                        executor=ex, allow_code_exec=True, argv=["bench"])
        assert res.status == "completed", res.error
        return res, time.perf_counter() - t

    def gen(side: str, r: int):
        t = time.perf_counter()
        res = run_paper("toy", out=work / f"gen-{side}-{r}", sets=[f"n={args.gen}", "batch_size=4"], models=["default"],
                        executor="ray" if side == "ray" else "local", argv=["bench"])
        assert res.status == "completed", res.error
        return res, time.perf_counter() - t

    parts = [p for p in (("sandbox (BigCodeBench canonical solutions)", bcb, "exec"), ("generation (default model)", gen, "-"))
             if args.only == "all" or p[0].startswith(args.only)]
    for name, fn, key in parts:
        walls: dict[str, list[float]] = {"local": [], "ray": []}
        totals: dict[str, list[float]] = {"local": [], "ray": []}
        ref = None
        same = True
        for r in range(args.rounds):
            for side in (("local", "ray") if r % 2 == 0 else ("ray", "local")):
                res, total = fn(side, r)
                rows = _stable(RunRecord(res.path).load_samples())
                ref = ref if ref is not None else rows
                same = same and rows == ref
                walls[side].append(_map_wall(res.path, key))
                totals[side].append(total)
                print(f"  {name} round {r} {side:5s}: map {walls[side][-1]:6.2f}s, whole run {total:6.2f}s")
        lo, ra = min(walls["local"]), min(walls["ray"])
        n = len(ref or [])
        print(f"{name}: {n} samples; records identical across sides and rounds: {same}; map wall in-process {lo:.2f}s, "
              f"ray {ra:.2f}s -> overhead {100 * (ra / lo - 1):+.1f}% ({1000 * (ra - lo) / max(n, 1):+.1f} ms/sample); "
              f"whole run (incl. actor start and model/sandbox start in each actor) {min(totals['local']):.1f}s vs "
              f"{min(totals['ray']):.1f}s")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
