"""Ruby/Rainbow Teaming search throughput: candidates per minute when the run's searches (methods x
seeds) advance in lockstep and every step's generations across archive cells, seeds and methods go
to the model as one call, vs one call per prompt (each search alone, unbatched). Both sides run in
one process on the same model, alternated (lockstep, one-at-a-time, lockstep, ...), and the ratio is
taken from the summed times.

    OMP_NUM_THREADS=2 python bench/ruby_teaming_throughput.py --batch-size 4 --iterations 1 --reps 2
    python bench/ruby_teaming_throughput.py --model 'hf:HuggingFaceTB/SmolLM2-360M-Instruct'

Sample mix: Rainbow (k = 0) and Ruby (k = 3) x seeds 0, 1, 2 on the 4 x 4 canary-proxy grid;
roles mutator, target and critic share the model; the judge and evaluator are the proxy's rules.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--json", default="", help="also write the results to this file")
    a = ap.parse_args()

    from solstice.models.loader import load_model
    from solstice.papers.ruby_teaming.config import Config
    from solstice.papers.ruby_teaming.descriptors import BUILTIN_SEEDS, load_descriptors
    from solstice.papers.ruby_teaming.search import RedTeamSearch, SearchModels, run_lockstep

    model = load_model(a.model)
    cfg = Config(n_risks=4, n_styles=4, batch_size=a.batch_size, iterations=a.iterations, eval_every=10**6,
                 judge="rule", evaluators=["rule"], mutator_max_tokens=a.max_tokens,
                 target_max_tokens=a.max_tokens, critic_max_tokens=a.max_tokens)
    desc = load_descriptors("proxy", 4, 4)
    jobs = [(k, s) for k in (0, 3) for s in range(a.seeds)]
    totals = {"lockstep": [0.0, 0, 0], "one_at_a_time": [0.0, 0, 0]}  # seconds, candidates, calls

    def searches(d: str, batched: bool) -> list[RedTeamSearch]:
        return [RedTeamSearch(cfg, desc, BUILTIN_SEEDS, SearchModels(model, model, None, model, None), memory_k=k,
                              seed=s, workdir=Path(d) / f"{k}-{s}", batched=batched) for k, s in jobs]

    for rep in range(a.reps):
        for mode in ("lockstep", "one_at_a_time"):
            with tempfile.TemporaryDirectory() as d:
                group = searches(d, batched=mode == "lockstep")
                t0 = time.perf_counter()
                if mode == "lockstep":
                    run_lockstep(group, a.iterations)
                else:
                    for s in group:
                        for _ in range(a.iterations):
                            s.step()
                dt = time.perf_counter() - t0
                totals[mode][0] += dt
                totals[mode][1] += sum(s.counts["candidates"] for s in group)
                totals[mode][2] += sum(v["calls"] for s in group for v in s.stats.values())
                print(f"rep {rep} {mode}: {dt:.1f} s", flush=True)
    res: dict[str, object] = {}
    for mode, (sec, cands, calls) in totals.items():
        res[mode] = {"seconds": round(sec, 1), "candidates_per_min": round(60 * cands / sec, 2), "prompts": calls}
    res["speedup"] = round(res["lockstep"]["candidates_per_min"] / res["one_at_a_time"]["candidates_per_min"], 2)
    res["setup"] = {"model": a.model, "batch_size": a.batch_size, "iterations": a.iterations, "reps": a.reps,
                    "searches": len(jobs), "max_tokens": a.max_tokens, "load_avg_1min": os.getloadavg()[0],
                    "threads": os.environ.get("OMP_NUM_THREADS", "all")}
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
