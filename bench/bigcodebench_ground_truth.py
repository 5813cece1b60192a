"""BigCodeBench ground truth in this environment: run every supported task's canonical solution in
the sandbox (no cache), then print the pass rate, the failures by shipped-exclusion category, any
failure the shipped list does not explain, and the wall time.

    python bench/bigcodebench_ground_truth.py [--workers 2] [--timeout 240] [--pool supported|stdlib|core]

Needs SOLSTICE_DATA. Writes experiments/bigcodebench/ground_truth.json (statuses and durations).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=240.0)
    ap.add_argument("--memory-mb", type=int, default=4096)
    ap.add_argument("--pool", default="supported", choices=("supported", "stdlib", "core"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N tasks (a quick check)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "bigcodebench" / "ground_truth.json"))
    args = ap.parse_args()
    if not os.environ.get("SOLSTICE_DATA"):
        print("SOLSTICE_DATA is not set; skipping")
        return 0
    from solstice.papers.bigcodebench import evaluate as ev
    from solstice.papers.bigcodebench.config import Config
    from solstice.papers.bigcodebench.tasks import load_tasks, select
    from solstice.sandbox import SandboxPool

    data = Path(os.environ["SOLSTICE_DATA"]) / "bigcodebench" / "BigCodeBench-v0.1.0_hf.jsonl.gz"
    all_tasks = load_tasks(data)
    tasks = [t for t in select(all_tasks, pool=args.pool) if not t.missing]
    tasks = tasks[: args.limit] if args.limit else tasks
    cfg = Config(workers=args.workers, timeout=args.timeout, memory_mb=args.memory_mb)
    scfg = ev.sandbox_config(cfg, ev.preload_for(tasks, cfg.preload))
    t0 = time.perf_counter()
    with SandboxPool(scfg) as pool:
        isolation = pool.isolation
        gt = ev.ground_truth(pool, tasks, SimpleNamespace(timeout=args.timeout), key="", use_cache=False)
    wall = time.perf_counter() - t0
    shipped = ev.exclusions()
    info = ev.classify_gt(tasks, gt, shipped)
    by_cat = Counter(shipped[t]["category"] for t in info["explained"])
    durations = [r["duration"] for r in gt.values()]
    unsupported = len(all_tasks) - len([t for t in all_tasks if not t.missing])
    print(f"{len(all_tasks)} tasks, {unsupported} unsupported here, {len(tasks)} run ({args.pool}); "
          f"{args.workers} workers, timeout {args.timeout:g}s; wall {wall:.0f}s")
    print(f"canonical pass: {info['passed']}/{info['n']} = {info['gt_pass_rate']:.2%}; "
          f"after shipped exclusions: {info['gt_pass_rate_after_exclusions']:.2%}")
    print("explained failures by category: " + ", ".join(f"{k} {v}" for k, v in by_cat.most_common()))
    print(f"statuses: {dict(Counter(r['status'] for r in gt.values()))}; median task {statistics.median(durations):.2f}s")
    print("unexplained failures: " + (", ".join(info["unexplained"]) or "none"))
    for tid in info["unexplained"]:
        d = gt[tid]["details"]
        first = next(iter(d.values()), "").strip().splitlines()
        print(f"  {tid}: {gt[tid]['status']}: {(first[-1] if first else '')[:160]}")
    out = {"n_tasks": len(all_tasks), "unsupported": unsupported, "run": len(tasks), "pool": args.pool,
           "workers": args.workers, "timeout": args.timeout, "wall_s": round(wall, 1), "isolation": isolation,
           "passed": info["passed"], "gt_pass_rate": info["gt_pass_rate"],
           "gt_pass_rate_after_exclusions": info["gt_pass_rate_after_exclusions"],
           "explained_by_category": dict(by_cat), "unexplained": info["unexplained"],
           "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
           "tasks": {t: {"status": r["status"], "duration": round(r["duration"], 3)} for t, r in gt.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
