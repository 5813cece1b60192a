"""Static MoE analyses at Mixtral-8x7B shapes, streamed layer by layer from safetensors shards.

Writes random expert weights (E = 8, d = 4096, F = 14336, fused transformers-5 names, float16; in a child
process, so the peak RSS printed is the analyses' alone) one
shard per layer into a scratch folder, then for each layer opens only that layer
(`solstice.analysis.moe_static.StreamedLayer`) and runs matrix-level similarity, neuron-averaged
similarity, the gate regression and (optionally) Hungarian matching of expert pairs. Prints the
wall time per analysis and the process's peak RSS, so a user can see that a 47B checkpoint needs
one layer's experts in memory (8 × 3 × d × F × 2 B ≈ 2.8 GB in float16 at full shape; RSS counts it
twice, the shard's mapped pages and the loaded copy) plus row chunks of the matrices being compared,
never the whole model (measured: 7.9 GB peak per layer, 9.6 GB with one Hungarian pair). Hungarian
matching at F = 14336 builds a 14336² float32 cost (≈ 0.82 GB) and `linear_sum_assignment` on it
takes ~40 s per pair; it is
off by default (`--pairs`).

    python bench/bench_moe_static.py --dir SCRATCH [--layers 2] [--hidden 4096 --ffn 14336] [--pairs 0]

Random weights: the numbers (similarities) mean nothing, only time and memory do.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def write_layer(path: Path, i: int, E: int, d: int, F: int, seed: int) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed + i)
    p = f"model.layers.{i}.mlp."
    save_file({p + "gate.weight": rng.standard_normal((E, d), dtype=np.float32).astype(np.float16),
               p + "experts.gate_up_proj": (rng.standard_normal((E, 2 * F, d), dtype=np.float32) * 0.02).astype(np.float16),
               p + "experts.down_proj": (rng.standard_normal((E, d, F), dtype=np.float32) * 0.02).astype(np.float16)},
              str(path))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="scratch folder for the random shards")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ffn", type=int, default=14336)
    ap.add_argument("--pairs", type=int, default=0, help="expert pairs Hungarian-matched per layer (gate only)")
    ap.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"layer{i}.safetensors" for i in range(a.layers)]
    if a.write_only:
        for i, f in enumerate(files):
            if not f.exists():
                t = time.perf_counter()
                write_layer(f, i, a.experts, a.hidden, a.ffn, 0)
                print(f"wrote layer {i} in {time.perf_counter() - t:.1f}s ({f.stat().st_size / 1e9:.2f} GB)")
        return
    if not all(f.exists() for f in files):  # written by a child process, so the peak RSS below is the analyses'
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--write-only"], check=True)
    from solstice.analysis import moe_static as S

    base = peak_gb()
    print(f"shape E={a.experts} d={a.hidden} F={a.ffn}; peak RSS before analyses {base:.2f} GB")
    layers = []
    for i in range(a.layers):
        t0 = time.perf_counter()
        layer = S.StreamedLayer([files[i]], i)
        t1 = time.perf_counter()
        S.matrix_similarity(layer)
        t2 = time.perf_counter()
        S.neuron_mean_similarity(layer)
        t3 = time.perf_counter()
        reg = S.gate_regression([layer]).mean_r2()
        t4 = time.perf_counter()
        if a.pairs:
            pairs = [(x, y) for x in range(a.experts) for y in range(x + 1, a.experts)][: a.pairs]
            S.reorder_similarity(layer, "gate", pairs)
        t5 = time.perf_counter()
        print(f"layer {i}: open {t1 - t0:.1f}s  matrix {t2 - t1:.1f}s  neuron-mean {t3 - t2:.1f}s  "
              f"regression {t4 - t3:.1f}s  hungarian x{a.pairs} {t5 - t4:.1f}s  peak RSS {peak_gb():.2f} GB  "
              f"(R² gate {reg['gate']:.3f})")
        layers.append(i)
        del layer
    print(f"peak RSS over all layers: {peak_gb():.2f} GB (one layer's experts: "
          f"{a.experts * 3 * a.hidden * a.ffn * 2 / 1e9:.2f} GB in float16)")


if __name__ == "__main__":
    main()
