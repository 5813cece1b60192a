"""MoA benchmarks, each ratio taken in one run with the two sides alternated.

    python bench/bench_moa.py decode  [--model default] [--lengths 4096 8192] [--batch 1 4 8] [--new 32] [--reps 2]
                                      [--plan plan.json] [--synthetic] [--profile] [--sides dense,static,moa,floor]
    python bench/bench_moa.py profile [--model default] [--p 2048] [--layers 10]
    python bench/bench_moa.py milp    [--time-limit 300]

decode : tokens/s (batch × new tokens / s) of greedy decoding and KV-cache bytes, MoA at density 0.5
         (PerHeadCache + the masked-SDPA prefill; a plan file, else the uniform 0.5 plan — the same
         spans per layer budget) against dense (stock SDPA + DynamicCache), dense with a preallocated
         StaticCache, and the no-attention floor, at each batch size and total length (prompt + new
         tokens); medians over reps, the side order rotating every rep.
         Targets: KV bytes ≤ 0.55× dense; decode ≥ 1.3× dense at 8K.
profile: peak RSS of influence profiling at P (ours: q/k/v/dO kept per layer, A/G/E recomputed one
         head at a time) against a naive L² profiler (eager attention keeping every layer's A and
         ∂L/∂A), each in a fresh subprocess, on the first `--layers` layers of the model.
milp   : HiGHS solve time of the MoA MILP for the SmolLM2 problem (30 layers × 3 KV heads = 90 units
         × 48 configs) and a 7B-sized one (32 × 32 = 1,024 units), synthetic block-pooled influence,
         gap 1e-4; each instance is checked feasible by a certificate (the uniform (0, 0.5) plan), so a
         missing plan is a time limit ("BackendError"), never an infeasible instance.
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
SIDES = ("dense", "static", "moa", "floor")


def _decode(model, ids, new: int, cache):
    import torch

    from solstice.models.kv import cache_kwargs, output_cache

    with torch.no_grad():
        out = model(input_ids=ids, **cache_kwargs(model, cache), use_cache=True)
        cache = output_cache(out)
        tok = out.logits[:, -1:].argmax(-1)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(new):
            out = model(input_ids=tok, **cache_kwargs(model, cache), use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        return (time.perf_counter() - t0, time.process_time() - c0), cache


def _fill(model, cache, batch: int, n_ctx: int, moa: bool) -> None:
    """Random keys/values for n_ctx tokens in every layer (no prefill compute)."""
    import torch

    cfg = model.config
    hkv = cfg.num_key_value_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    g = torch.Generator().manual_seed(0)
    k = torch.randn(batch, hkv, n_ctx, d, generator=g)      # one draw, copied into every layer
    v = torch.randn(batch, hkv, n_ctx, d, generator=g)
    for layer in range(cfg.num_hidden_layers):
        if moa:
            cache.layers[layer].absorb(k, v, torch.ones(batch, n_ctx, dtype=torch.bool))
            cache.layers[layer].seen = n_ctx
        else:
            cache.update(k, v, layer)


def _synthetic_decode(model, batch: int, n_ctx: int, new: int, cache, moa: bool, profile: bool = False):
    """Fill the cache with random keys/values for n_ctx tokens, then time `new` greedy decode steps
    (after one untimed step). Decode cost depends on cache sizes, not on their contents."""
    import torch

    from solstice.models.kv import cache_kwargs

    _fill(model, cache, batch, n_ctx, moa)
    tok = torch.full((batch, 1), 1000)
    with torch.no_grad():
        out = model(input_ids=tok, **cache_kwargs(model, cache), use_cache=True)        # warm-up step
        tok = out.logits[:, -1:].argmax(-1)
        if profile:
            return _profile_step(model, tok, cache), cache
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(new):
            out = model(input_ids=tok, **cache_kwargs(model, cache), use_cache=True)
            tok = out.logits[:, -1:].argmax(-1)
        return (time.perf_counter() - t0, time.process_time() - c0), cache


def _profile_step(model, tok, cache) -> dict:
    """torch.profiler over one decode step: self CPU ms by op family."""
    from torch.profiler import ProfilerActivity, profile

    from solstice.models.kv import cache_kwargs

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(input_ids=tok, **cache_kwargs(model, cache), use_cache=True)
    fam = {"weights (mm/addmm)": ("aten::mm", "aten::addmm", "aten::bmm"),
           "attention (sdpa kernels)": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                                        "aten::_scaled_dot_product_attention_math", "aten::_softmax"),
           "cache copies (cat/copy/index)": ("aten::cat", "aten::copy_", "aten::index_copy_",
                                             "aten::_index_put_impl_", "aten::index")}
    out = {k: 0.0 for k in fam}
    total = 0.0
    for ev in prof.key_averages():
        ms = ev.self_cpu_time_total / 1000
        total += ms
        for k, names in fam.items():
            if ev.key in names:
                out[k] += ms
    out["other"] = total - sum(out.values())
    out["total"] = total
    return {k: round(v, 2) for k, v in out.items()}


def _kv_bytes(cache) -> int:
    if hasattr(cache, "nbytes"):
        return cache.nbytes()
    return sum(layer.keys.numel() * layer.keys.element_size() * 2 for layer in cache.layers)


def _median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def _bench_plan(which: str, shape: dict):
    """'' → uniform (0, 0.5): every KV head keeps half (one span group per layer);
    'mixed' → two rules per layer at mean density 0.5: KV heads of even index (0, 0.25), odd ones
    (0, 1.0) when there are 3 KV heads (a non-contiguous group, two SDPA calls per layer);
    else a plan file."""
    from solstice.models import sparse_attention as sa

    L, hkv = shape["num_layers"], shape["num_kv_heads"]
    n_rep = shape["num_heads"] // hkv
    if not which:
        return sa.SparsePlan.uniform(0.0, 0.5, L, hkv, n_rep)
    if which == "mixed":
        if hkv != 3:
            raise SystemExit("--plan mixed is written for 3 KV heads (SmolLM2)")
        row_b = (0.25, 1.0, 0.25)
        return sa.SparsePlan(tuple([(0.0,) * 3] * L), tuple([row_b] * L), n_rep)
    return sa.SparsePlan.load(which, **shape)


def bench_decode(args) -> dict:
    """Sides, alternated within every rep (the order rotates each rep):
    dense  — stock SDPA + DynamicCache (transformers' default; the cache grows by torch.cat)
    static — stock SDPA + StaticCache preallocated to N (dense without the growing copies)
    moa    — MoA plan + PerHeadCache (sink + ring buffer per KV head)
    floor  — stock SDPA + DynamicCache holding 64 tokens: the step without attention work, the
             ceiling on what any KV sparsification can gain at this batch size."""
    import torch
    from transformers import DynamicCache, StaticCache

    from solstice.models import sparse_attention as sa
    from solstice.models.sparse_cache import PerHeadCache

    hf = _load(args.model)
    model = hf.model
    shape = sa.model_shape(model)
    plan = _bench_plan(args.plan, shape)
    sides = [x for x in args.sides.split(",") if x]
    rows = []
    for batch in args.batch:
        for n in args.lengths:
            ctx = n - args.new - 1
            g = torch.Generator().manual_seed(n)
            ids = torch.randint(1000, 30000, (batch, n - args.new), generator=g)
            res: dict = {k: [] for k in sides}
            res_cpu: dict = {k: [] for k in sides}
            kv: dict = {}

            def one(side: str, profile: bool = False, n=n, batch=batch, ctx=ctx, ids=ids):
                if side == "moa":
                    sa.apply_plan(model, plan, total_length=n)
                    cache = PerHeadCache(model, n)
                else:
                    model.set_attn_implementation("sdpa")
                    cache = (StaticCache(config=model.config, max_cache_len=n) if side == "static"
                             else DynamicCache(config=model.config))
                if args.synthetic:
                    return _synthetic_decode(model, batch, 64 if side == "floor" else ctx, args.new, cache,
                                             side == "moa", profile)
                return _decode(model, ids[:, :64] if side == "floor" else ids, args.new, cache)

            for rep in range(args.reps):
                order = sides[rep % len(sides):] + sides[: rep % len(sides)]
                for side in order:
                    (secs, cpu), cache = one(side)
                    kv[side] = _kv_bytes(cache)
                    del cache
                    res[side].append(batch * args.new / secs)
                    res_cpu[side].append(batch * args.new / cpu)
                    print(f"B={batch} N={n} rep={rep} {side}: {res[side][-1]:.2f} tok/s wall, "
                          f"{res_cpu[side][-1]:.2f} tok per CPU s", flush=True)
            med = {k: _median(v) for k, v in res.items()}
            row = {"batch": batch, "total_tokens": n, "tok_s": res, "tok_s_median": med, "kv_bytes": kv,
                   "tok_per_cpu_s": res_cpu, "tok_per_cpu_s_median": {k: _median(v) for k, v in res_cpu.items()},
                   "plan_density": plan.kv_density(n)}
            # ratios: median over reps of the within-rep ratio (both sides timed minutes apart at most)
            for base in ("dense", "static", "floor"):
                if "moa" in res and base in res:
                    per_rep = [m / d for m, d in zip(res["moa"], res[base])]
                    per_rep_cpu = [m / d for m, d in zip(res_cpu["moa"], res_cpu[base])]
                    row[f"moa_over_{base}"] = _median(per_rep)
                    row[f"moa_over_{base}_per_rep"] = per_rep
                    row[f"moa_over_{base}_cpu"] = _median(per_rep_cpu)
                    row[f"moa_over_{base}_cpu_per_rep"] = per_rep_cpu
            if "dense" in kv and "moa" in kv:
                row["kv_ratio"] = kv["moa"] / kv["dense"]
            for base in ("dense", "static"):
                if "floor" in med and base in med:
                    # share of the step that is attention + cache work (the rest is the floor), CPU time
                    cm = row["tok_per_cpu_s_median"]
                    row[f"{base}_attention_share_cpu"] = 1 - cm[base] / cm["floor"]
            if args.profile and args.synthetic:
                row["profile_ms"] = {s: one(s, profile=True)[0] for s in sides}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "tok_s"}), flush=True)
    model.set_attn_implementation("sdpa")
    return {"bench": "decode", "model": args.model, "plan": args.plan or "uniform", "new_tokens": args.new, "synthetic_cache": args.synthetic,
            "threads": torch.get_num_threads(), "rows": rows}


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

    from solstice.papers.moa.solver import (
        Problem,
        ScipyMilpSolver,
        check_solution,
        config_grid,
        config_loss,
        normalise,
    )

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
        # feasibility certificate independent of the solver: every unit on (α=0, β=0.5) has density
        # exactly 0.5 at every length, inside the band [0.45, 0.5], with one rule per layer
        uniform = configs.index((0.0, 0.5))
        certificate = not check_solution(prob, [uniform] * prob.num_units)
        try:
            sol = ScipyMilpSolver().solve(prob, normalise(z), time_limit=args.time_limit)
        except Exception as exc:  # noqa: BLE001 - a time-out is a result here
            rows.append({"problem": name, "units": prob.num_units, "configs": len(configs), "error": str(exc),
                         "error_kind": type(exc).__name__, "uniform_plan_feasible": certificate})
            print(rows[-1], flush=True)
            continue
        rows.append({"problem": name, "units": prob.num_units, "configs": len(configs), "seconds": sol.seconds,
                     "cpu_seconds": sol.cpu_seconds, "status": sol.status, "feasible": not check_solution(prob, sol.assign),
                     "uniform_plan_feasible": certificate, "objective": sol.objective,
                     "uniform_plan_objective": float(normalise(z)[:, uniform].sum())})
        print(rows[-1], flush=True)
    return {"bench": "milp", "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["decode", "profile", "milp"])
    ap.add_argument("--model", default="default")
    ap.add_argument("--lengths", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--sides", default=",".join(SIDES), help="decode: comma-separated subset of " + ",".join(SIDES))
    ap.add_argument("--profile", action="store_true", help="decode: also torch.profiler one step per side")
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
