"""LoRA spectrum through the QR trick (`solstice.training.lora_spectra.qr_svdvals`) against the dense
SVD of the d_out x d_in product, in one process, the two sides alternated.

Sample mix: `--reps` random float32 LoRA pairs B (d x r), A (r x d) at d = 4096, r = 16 (the issue's
size), each timed both ways in alternating order. Prints the median times, their ratio and the
largest relative difference of the r singular values (float64 check on the first pair).

    python bench/bench_dsire_spectra.py [--d 4096] [--r 16] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from solstice.training.lora_spectra import qr_svdvals

    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=4096)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    qr_t, dense_t = [], []
    for i in range(a.reps):
        B = torch.randn(a.d, a.r, generator=g)
        A = torch.randn(a.r, a.d, generator=g)
        sides = [("qr", lambda B=B, A=A: qr_svdvals(B, A)), ("dense", lambda B=B, A=A: torch.linalg.svdvals(B @ A)[: a.r])]
        for name, fn in (sides if i % 2 == 0 else sides[::-1]):
            t0 = time.perf_counter()
            s = fn()
            (qr_t if name == "qr" else dense_t).append(time.perf_counter() - t0)
            if i == 0:
                if name == "qr":
                    s_qr = s
                else:
                    s_dense = s
    B64, A64 = B.double(), A.double()
    exact = torch.linalg.svdvals(B64 @ A64)[: a.r]
    rel64 = float(((qr_svdvals(B64, A64) - exact).abs() / exact).max())
    rel32 = float(((s_qr.double() - s_dense.double()).abs() / s_dense.double()).max())
    q, d = statistics.median(qr_t), statistics.median(dense_t)
    print(f"d={a.d} r={a.r} reps={a.reps} threads={torch.get_num_threads()}")
    print(f"QR trick   median {q * 1e3:9.2f} ms")
    print(f"dense SVD  median {d * 1e3:9.2f} ms")
    print(f"speed-up   {d / q:9.1f}x")
    print(f"max relative difference of the r values: float32 {rel32:.2e}, float64 (last pair) {rel64:.2e}")


if __name__ == "__main__":
    main()
