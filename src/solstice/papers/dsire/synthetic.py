"""Planted-spectrum synthetic LoRAs (spec: a model-free check of the whole feature + vote pipeline).

A model of size n gets, in every layer, orthonormal factors with dW's singular values
sigma_i(n) = c_i / (n + 1) * (1 + noise): B = U diag(sigma), A = V^T. Sizes are then perfectly
recoverable, so DSiRe must reach accuracy 1.0 and MAE 0 on any concept split.
"""

from __future__ import annotations

from collections.abc import Sequence

from solstice.training.lora_spectra import Adapter, LoraModule


def planted_adapters(sizes: Sequence[int], per_size: int, *, r: int = 4, d_out: int = 24, d_in: int = 16,
                     layers: int = 3, noise: float = 0.01, seed: int = 0) -> tuple[list[Adapter], list[int], list[str]]:
    """(adapters, sizes, concepts): `per_size` models per size; concept k holds the k-th model of
    every size, as in LoRA-WiSE (every concept has every size)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    c = torch.linspace(2.0, 1.0, r, dtype=torch.float64)
    adapters, labels, concepts = [], [], []
    for k in range(per_size):
        for n in sizes:
            mods = {}
            for li in range(layers):
                U, _ = torch.linalg.qr(torch.randn(d_out, r, generator=g, dtype=torch.float64))
                V, _ = torch.linalg.qr(torch.randn(d_in, r, generator=g, dtype=torch.float64))
                sig = c * (li + 1) / (n + 1) * (1 + noise * torch.randn(r, generator=g, dtype=torch.float64))
                name = f"layers.{li}.q_proj"
                mods[name] = LoraModule(name, V.T.contiguous(), U * sig, 1.0)
            adapters.append(Adapter(mods, f"synthetic/c{k}/n{n}"))
            labels.append(int(n))
            concepts.append(f"c{k}")
    return adapters, labels, concepts
