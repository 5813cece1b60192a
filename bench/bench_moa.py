"""MoA benchmarks, each ratio taken in one run with the two sides alternated.

    python bench/bench_moa.py decode  [--model default] [--lengths 4096 8192] [--new 32] [--reps 2] [--plan plan.json]
                                      [--synthetic]
    python bench/bench_moa.py profile [--model default] [--p 2048] [--layers 10]
    python bench/bench_moa.py milp    [--time-limit 300]

decode : tokens/s of greedy decoding and KV-cache bytes, MoA at density 0.5 (PerHeadCache + the
         masked-SDPA prefill; a plan file, else the uniform 0.5 plan — the same spans per layer
         budget) against dense (stock SDPA + DynamicCache), at each total length (prompt + new tokens).
         Targets: KV bytes ≤ 0.55× dense; decode ≥ 1.3× dense at 8K.
profile: peak RSS of influence profiling at P (ours: q/k/v/dO kept per layer, A/G/E recomputed one
         head at a time) against a naive L² profiler (eager attention keeping every layer's A and
         ∂L/∂A), each in a fresh subprocess, on the first `--layers` layers of the model.
milp   : HiGHS solve time of the MoA MILP for the SmolLM2 problem (30 layers × 3 KV heads = 90 units
         × 48 configs) and a 7B-sized one (32 × 32 = 1,024 units), synthetic block-pooled influence.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _load(spec: str):
    from solstice.models.loader import load_model

    return load_model(spec)


# -- decode ---------------------------------------------------------------------------------------
def _decode(model, ids, new: int, cache):
    import torch

    with torch.no_grad():
        out = model(input_ids=ids, cache=cache, use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(new):
            out = model(input_ids=tok, cache=cache, use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        return time.perf_counter() - t0, cache


def _synthetic_decode(model, n_ctx: int, new: int, cache, moa: bool):
    """Fill the cache with random keys/values for n_ctx tokens (no prefill compute), then time
    `new` greedy decode steps. Decode cost depends on cache sizes, not on their contents."""
    import torch

    cfg = model.config
    hkv = cfg.num_key_value_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    g = torch.Generator().manual_seed(0)
    for layer in range(cfg.num_hidden_layers):
        k = torch.randn(1, hkv, n_ctx, d, generator=g)
        v = torch.randn(1, hkv, n_ctx, d, generator=g)
        if moa:
            lay = cache.layers[layer]
            lay.update(k, v)
            lay.pending = None
            lay.absorb(k, v, torch.ones(1, n_ctx, dtype=torch.bool))
        else:
            cache.update(k, v, layer)
    tok = torch.tensor([[1000]])
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(new):
            out = model(input_ids=tok, cache=cache, use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        return time.perf_counter() - t0, cache


def _kv_bytes_dynamic(cache) -> int:
    return sum(layer.keys.numel() * layer.keys.element_size() * 2 for layer in cache.layers)


def bench_decode(args) -> dict:
    import torch
    from transformers import DynamicCache

    from solstice.models import sparse_attention as sa
    from solstice.models.sparse_cache import PerHeadCache

    hf = _load(args.model)
    model = hf.model
    shape = sa.model_shape(model)
    n_rep = shape["num_heads"] // shape["num_kv_heads"]
    plan = (sa.SparsePlan.load(args.plan, **shape) if args.plan
            else sa.SparsePlan.uniform(0.0, 0.5, shape["num_layers"], shape["num_kv_heads"], n_rep))
    rows = []
    for n in args.lengths:
        g = torch.Generator().manual_seed(n)
        ids = torch.randint(1000, 30000, (1, n - args.new), generator=g)
        res = {"dense": [], "moa": []}
        kv = {}
        for rep in range(args.reps):
            for side in ("dense", "moa") if rep % 2 == 0 else ("moa", "dense"):
                run = (lambda c, moa: _synthetic_decode(model, n - args.new, args.new, c, moa)) if args.synthetic \
                    else (lambda c, moa: _decode(model, ids, args.new, c))
                if side == "dense":
                    model.set_attn_implementation("sdpa")
                    secs, cache = run(DynamicCache(config=model.config), False)
                    kv[side] = _kv_bytes_dynamic(cache)
                else:
                    sa.apply_plan(model, plan, total_length=n)
                    cache = PerHeadCache(model, n)
                    secs, cache = run(cache, True)
                    kv[side] = cache.nbytes()
                res[side].append(args.new / secs)
                print(f"N={n} rep={rep} {side}: {args.new / secs:.2f} tok/s", flush=True)
        best = {k: max(v) for k, v in res.items()}
        rows.append({"total_tokens": n, "tok_s": res, "kv_bytes": kv, "kv_ratio": kv["moa"] / kv["dense"],
                     "speedup_best": best["moa"] / best["dense"],
                     "speedup_per_rep": [m / d for m, d in zip(res["moa"], res["dense"])],
                     "plan_density": plan.kv_density(n)})
    model.set_attn_implementation("sdpa")
    return {"bench": "decode", "model": args.model, "new_tokens": args.new, "synthetic_cache": args.synthetic,
            "rows": rows}


# -- profiling memory ------------------------------------------------------------------------------
_CHILD = r"""
import resource, sys, json, torch
from solstice.models.loader import load_model
from solstice.papers.moa.influence import Recorder, profile_sequence, influence, block_pool
which, p, layers, spec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hf = load_model(spec)
m = hf.model
if layers > 0:
    m.model.layers = m.model.layers[:layers]
    m.config.num_hidden_layers = layers
for q in m.parameters():
    q.requires_grad_(False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ids = torch.randint(1000, 30000, (p,), generator=torch.Generator().manual_seed(0))
mask = torch.zeros(p, dtype=torch.bool); mask[p // 2:] = True
import time; t0 = time.perf_counter()
if which == "ours":
    import transformers
    rec = Recorder(); transformers.AttentionInterface.register("bench_rec", rec); m.set_attn_implementation("bench_rec")
    out = profile_sequence(m, rec, ids, mask, 64)
else:
    m.set_attn_implementation("eager")
    emb = m.get_input_embeddings()(ids[None]).detach().requires_grad_(True)
    res = m(inputs_embeds=emb, output_attentions=True)
    atts = res.attentions
    for a in atts: a.retain_grad()
    logits = res.logits[0, :-1]
    loss = torch.nn.functional.cross_entropy(logits[mask[1:]], ids[1:][mask[1:]])
    loss.backward()
    out = torch.stack([torch.stack([block_pool(influence(a[0, h], a.grad[0, h]).abs().tril(), 64)
                                    for h in range(a.shape[1])]) for a in atts])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"which": which, "P": p, "layers": layers, "peak_rss_mb": peak / 1024, "after_load_mb": base / 1024,
                  "seconds": time.perf_counter() - t0, "sum": float(out.sum())}))
"""


def bench_profile(args) -> dict:
    rows = []
    order = ["ours", "naive", "ours", "naive"][: 2 * args.reps]
    for which in order:
        r = subprocess.run([sys.executable, "-c", _CHILD, which, str(args.p), str(args.layers), args.model],
                           capture_output=True, text=True)
        if r.returncode != 0:
            rows.append({"which": which, "error": r.stderr.strip().splitlines()[-1][:300]})
        else:
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    ok = {w: [x for x in rows if x.get("which") == w and "peak_rss_mb" in x] for w in ("ours", "naive")}
    out = {"bench": "profile", "model": args.model, "rows": rows}
    if ok["ours"] and ok["naive"]:
        inc = {w: min(x["peak_rss_mb"] - x["after_load_mb"] for x in ok[w]) for w in ok}
        out["extra_mb"] = inc
        out["naive_over_ours"] = inc["naive"] / inc["ours"]
        out["same_result_rel"] = abs(ok["ours"][0]["sum"] - ok["naive"][0]["sum"]) / abs(ok["naive"][0]["sum"])
    return out


# -- MILP ------------------------------------------------------------------------------------------
def bench_milp(args) -> dict:
    import numpy as np

    from solstice.papers.moa.solver import Problem, ScipyMilpSolver, check_solution, config_grid, config_loss, normalise

    rows = []
    for name, layers, kv, grid in (("smollm2", 30, 3, (2048, 4096, 512, 256)),
                                   ("7b", 32, 32, (8192, 16384, 2048, 1024))):
        configs = config_grid(*grid)
        max_p, ext = grid[0], grid[1]
        rng = np.random.default_rng(0)
        nb = max_p // 64
        # synthetic pooled influence: a sink column plus a per-unit decay with distance
        dist = np.arange(nb)[:, None] - np.arange(nb)[None, :]
        units = []
        for _ in range(layers * kv):
            scale = rng.uniform(0.5, 20)
            m = np.exp(-np.clip(dist, 0, None) / scale) * (dist >= 0)
            m[:, 0] += rng.uniform(0, 2)
            units.append(m * (dist >= 0))
        z = config_loss(np.stack(units), configs, max_p)
        prob = Problem.build(layers, kv, configs, [max_p // 2, max_p, ext], 0.5)
        try:
            sol = ScipyMilpSolver().solve(prob, normalise(z), time_limit=args.time_limit)
        except Exception as exc:  # noqa: BLE001 - a time-out is a result here
            rows.append({"problem": name, "units": prob.num_units, "configs": len(configs), "error": str(exc)})
            print(rows[-1], flush=True)
            continue
        rows.append({"problem": name, "units": prob.num_units, "configs": len(configs), "seconds": sol.seconds,
                     "cpu_seconds": sol.cpu_seconds, "status": sol.status, "feasible": not check_solution(prob, sol.assign)})
        print(rows[-1], flush=True)
    return {"bench": "milp", "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["decode", "profile", "milp"])
    ap.add_argument("--model", default="default")
    ap.add_argument("--lengths", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--plan", default="")
    ap.add_argument("--synthetic", action="store_true", help="random cache contents instead of a real prefill "
                    "(decode cost depends on cache sizes only; skips minutes of prefill on a loaded CPU)")
    ap.add_argument("--p", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    fn = {"decode": bench_decode, "profile": bench_profile, "milp": bench_milp}[args.which]
    t0 = time.time()
    res = fn(args)
    res["wall_s"] = time.time() - t0
    res["loadavg"] = list(__import__("os").getloadavg())
    res["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        open(args.out, "w").write(text)


if __name__ == "__main__":
    main()
