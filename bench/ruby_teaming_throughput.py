"""Ruby/Rainbow Teaming search throughput: iterations per minute when each step's generations go to
the model as one batch vs one call per prompt, measured in one process on the same model and seed.

    OMP_NUM_THREADS=1 python bench/ruby_teaming_throughput.py --batch-size 8 --iterations 2
    python bench/ruby_teaming_throughput.py --model 'hf:HuggingFaceTB/SmolLM2-360M-Instruct'

Roles mutator, target, critic and evaluator share the model; the judge is the proxy's rule judge.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--memory-k", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--json", default="", help="also write the results to this file")
    a = ap.parse_args()

    from solstice.models.loader import load_model
    from solstice.papers.ruby_teaming.config import Config
    from solstice.papers.ruby_teaming.descriptors import BUILTIN_SEEDS, load_descriptors
    from solstice.papers.ruby_teaming.search import RedTeamSearch, SearchModels

    model = load_model(a.model)
    cfg = Config(n_risks=4, n_styles=4, batch_size=a.batch_size, iterations=a.iterations, eval_every=10**6,
                 judge="rule", evaluators=["rule"], mutator_max_tokens=a.max_tokens,
                 target_max_tokens=a.max_tokens, critic_max_tokens=a.max_tokens)
    desc = load_descriptors("proxy", 4, 4)
    res = {}
    for mode in ("batched", "sequential"):
        with tempfile.TemporaryDirectory() as d:
            s = RedTeamSearch(cfg, desc, BUILTIN_SEEDS, SearchModels(model, model, None, model, model),
                              memory_k=a.memory_k, seed=0, workdir=Path(d), batched=mode == "batched")
            t0 = time.perf_counter()
            for _ in range(a.iterations):
                s.step()
            dt = time.perf_counter() - t0
            toks = sum(v["generated_tokens"] for v in s.stats.values())
            res[mode] = {"seconds": round(dt, 1), "iterations_per_min": round(60 * a.iterations / dt, 3),
                         "candidates_per_min": round(60 * s.counts["candidates"] / dt, 2),
                         "generated_tokens_per_s": round(toks / dt, 1), "llm_calls": sum(v["calls"] for v in s.stats.values())}
    res["speedup"] = round(res["batched"]["iterations_per_min"] / res["sequential"]["iterations_per_min"], 2)
    res["setup"] = {"model": a.model, "batch_size": a.batch_size, "iterations": a.iterations, "memory_k": a.memory_k,
                    "max_tokens": a.max_tokens}
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
