"""MIGU overhead: training step time and peak memory with and without MIGU, same model and batch.

    python bench/bench_migu_overhead.py [--model default] [--batch 8] [--seq 128] [--steps 6]

Time: one process alternates plain and MIGU steps (same optimizer, same batch) and compares the
medians; on a CPU the ratio uses process CPU time, which other programs on a shared machine do
not inflate (wall time is printed too). Memory: each configuration runs in a fresh subprocess; the peak is the process's peak
resident memory over the measured steps (reset after model load and a warm-up step, through
/proc/self/clear_refs) on CPU, or torch.cuda.max_memory_allocated on a GPU. Targets: <= 1.15x time,
<= 1.05x memory (full fine-tuning of every layer, q = 0.7, masking active).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def load(spec: str):
    from solstice.models.loader import load_model

    hf = load_model(spec)
    return hf.model, hf.tokenizer


def make_batch(tok, batch: int, seq: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, min(len(tok), 30000), (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    for r in range(batch):  # some padding, as in real batches
        mask[r, : r * seq // (4 * batch)] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def step(model, opt, batch, migu):
    import torch

    out = model(**batch)
    out.loss.backward()
    if migu is not None:
        migu.before_clip(model)
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    if migu is not None:
        migu.after_step(model, opt)
    opt.zero_grad(set_to_none=True)


def sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def setup(args):
    import torch

    from solstice.training.migu import MIGU

    model, tok = load(args.model)
    model.train()
    device = next(model.parameters()).device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    migu = MIGU(model, args.threshold)
    migu.task = 1  # past the first task: masking is active
    return model, tok, opt, migu, make_batch(tok, args.batch, args.seq, device)


def peak_memory(args, use_migu: bool) -> float:
    """Runs in a child process: peak bytes over `args.steps` steps."""
    import torch

    model, tok, opt, migu, batch = setup(args)
    if use_migu:
        migu.attach()
    step(model, opt, batch, migu if use_migu else None)  # warm-up: optimizer states exist now
    sync()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")
    for _ in range(args.mem_steps):
        step(model, opt, batch, migu if use_migu else None)
    sync()
    if torch.cuda.is_available():
        return float(torch.cuda.max_memory_allocated())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def timing(args) -> dict[str, list[float]]:
    """Wall seconds per step and, on CPU, process CPU seconds (stable on a shared machine)."""
    model, tok, opt, migu, batch = setup(args)
    times: dict[str, list[float]] = {"plain": [], "migu": [], "plain_cpu": [], "migu_cpu": []}
    for i in range(args.steps + 1):
        for name in ("plain", "migu") if i % 2 == 0 else ("migu", "plain"):
            if name == "migu":
                migu.attach()
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            step(model, opt, batch, migu if name == "migu" else None)
            sync()
            if i > 0:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
                times[name + "_cpu"].append(time.process_time() - c0)
            migu.detach()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per configuration")
    ap.add_argument("--mem-steps", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--_child", choices=["plain", "migu"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        print(peak_memory(args, args._child == "migu"))
        return 0
    mem = {}
    for name in ("plain", "migu"):
        cmd = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch), "--seq", str(args.seq),
               "--mem-steps", str(args.mem_steps), "--threshold", str(args.threshold), "--_child", name]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
        mem[name] = float(out.stdout.strip().splitlines()[-1])
    import torch

    times = timing(args)
    t_plain, t_migu = statistics.median(times["plain"]), statistics.median(times["migu"])
    c_plain, c_migu = statistics.median(times["plain_cpu"]), statistics.median(times["migu_cpu"])
    on_gpu = torch.cuda.is_available()
    res = {
        "model": args.model, "batch": args.batch, "seq": args.seq, "threshold": args.threshold,
        "device": "cuda" if on_gpu else f"cpu ({torch.get_num_threads()} threads)",
        "step_s_plain": t_plain, "step_s_migu": t_migu, "wall_ratio": t_migu / t_plain,
        "cpu_s_plain": c_plain, "cpu_s_migu": c_migu, "cpu_ratio": c_migu / c_plain,
        "time_ratio": t_migu / t_plain if on_gpu else c_migu / c_plain,
        "peak_bytes_plain": mem["plain"], "peak_bytes_migu": mem["migu"], "memory_ratio": mem["migu"] / mem["plain"],
        "steps": args.steps, "times": times,
    }
    print(f"model {args.model}, batch {args.batch} x {args.seq} tokens, full fine-tuning, q={args.threshold}")
    print(f"device {res['device']}")
    print(f"step wall   plain {t_plain:.3f}s   MIGU {t_migu:.3f}s   ratio {res['wall_ratio']:.3f}x")
    if not on_gpu:
        print(f"step CPU    plain {c_plain:.3f}s   MIGU {c_migu:.3f}s   ratio {res['cpu_ratio']:.3f}x")
    print(f"time ratio  {res['time_ratio']:.3f}x (target <= 1.15x; {'wall' if on_gpu else 'CPU'} time)")
    print(f"peak memory plain {mem['plain'] / 2**20:.0f} MiB   MIGU {mem['migu'] / 2**20:.0f} MiB   "
          f"ratio {res['memory_ratio']:.3f}x (target <= 1.05x)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
