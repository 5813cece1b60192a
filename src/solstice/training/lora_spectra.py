"""Spectral features of LoRA adapters, read from safetensors files of any common key style.

A LoRA module adds dW = s * B @ A to a frozen weight (A: r x d_in "down", B: d_out x r "up",
s = alpha / r, or alpha / sqrt(r) for rsLoRA). This module reads adapters, pairs their A/B
matrices under one canonical layer name and computes, per layer, the singular values of A, of B
and of dW, plus their Frobenius norms. The singular values of dW come from the QR trick, never
the dense d_out x d_in product:

    B = Q_B R_B,  A^T = Q_A R_A   =>   B A = Q_B (R_B R_A^T) Q_A^T   =>   sigma(B A) = sigma(R_B R_A^T)

an (at most) r x r problem. Key styles:

    PEFT        ...q_proj.lora_A.weight / .lora_B.weight (optionally .lora_A.<adapter>.weight);
                alpha and r from adapter_config.json next to the weights
    diffusers   ...to_q_lora.down.weight / .up.weight, or ...to_q.lora.down.weight / .up.weight
    kohya       lora_unet_..._to_q.lora_down.weight / .lora_up.weight (+ optional .alpha scalar)

    adapter = read_adapter("run/adapter_model.safetensors")       # or the checkpoint directory
    feats = spectral_features(adapter)                            # voter name -> r values
    norms = norm_features(adapter)                                # voter name -> [Frobenius norm]

A missing A/B partner, a shape that does not chain (A's rank != B's rank) or an adapter whose
layer set differs from the others raises DataError naming the layer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError

VOTER_TYPES = ("A", "B", "BA")

# (pattern, role): role 'A' = down, 'B' = up, 'alpha' = kohya scalar; group 1 is the layer name
_KEY_STYLES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(.*)\.lora_A(?:\.[^.]+)?\.weight$"), "A"),
    (re.compile(r"^(.*)\.lora_B(?:\.[^.]+)?\.weight$"), "B"),
    (re.compile(r"^(.*)\.lora_down\.weight$"), "A"),
    (re.compile(r"^(.*)\.lora_up\.weight$"), "B"),
    (re.compile(r"^(.*?)(?:_lora|\.lora)\.down\.weight$"), "A"),
    (re.compile(r"^(.*?)(?:_lora|\.lora)\.up\.weight$"), "B"),
    (re.compile(r"^(.*)\.alpha$"), "alpha"),
)


@dataclass
class LoraModule:
    """One adapted layer: A (r x d_in), B (d_out x r) and the scale s of dW = s * B @ A."""

    name: str
    A: Any
    B: Any
    scale: float = 1.0

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])


@dataclass
class Adapter:
    """A LoRA adapter: its modules by canonical layer name (sorted) and where it came from."""

    modules: dict[str, LoraModule]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def layers(self) -> list[str]:
        return sorted(self.modules)


def canonical_key(key: str) -> tuple[str, str] | None:
    """(layer name, role) for a LoRA tensor key, or None for keys that are not LoRA tensors.
    PEFT's 'base_model.model.' prefix is dropped so adapters saved either way pair up."""
    for pat, role in _KEY_STYLES:
        m = pat.match(key)
        if m:
            name = m.group(1)
            name = name.removeprefix("base_model.model.")
            return name, role
    return None


def pair_tensors(tensors: Mapping[str, Any], *, alpha: float | None = None, rank_scaled: bool = False,
                 source: str = "") -> Adapter:
    """Pair A/B tensors of one state dict into an Adapter. `alpha` (PEFT's lora_alpha) gives the
    scale alpha / r (alpha / sqrt(r) with `rank_scaled`); a kohya '.alpha' entry overrides it for
    its layer; without either the scale is 1."""
    parts: dict[str, dict[str, Any]] = {}
    for key, t in tensors.items():
        got = canonical_key(key)
        if got is None:
            continue
        name, role = got
        if role in parts.setdefault(name, {}):
            raise DataError(f"{source or 'adapter'}: layer '{name}' has two {role} tensors (two adapters in one file?)")
        parts[name][role] = t
    if not parts:
        raise DataError(f"{source or 'adapter'}: no LoRA tensors found (expected lora_A/lora_B, lora_down/"
                        "lora_up or lora.down/lora.up keys)")
    modules: dict[str, LoraModule] = {}
    for name in sorted(parts):
        p = parts[name]
        if "A" not in p or "B" not in p:
            missing = "A (down)" if "A" not in p else "B (up)"
            if set(p) == {"alpha"}:
                raise DataError(f"{source or 'adapter'}: layer '{name}' has an alpha but no LoRA matrices")
            raise DataError(f"{source or 'adapter'}: layer '{name}' has no {missing} matrix")
        A, B = p["A"], p["B"]
        A = A.reshape(A.shape[0], -1) if A.ndim != 2 else A  # conv LoRAs: flatten the kernel
        B = B.reshape(B.shape[0], -1) if B.ndim != 2 else B
        if A.shape[0] != B.shape[1]:
            raise DataError(f"{source or 'adapter'}: layer '{name}': A is {tuple(A.shape)} and B is "
                            f"{tuple(B.shape)}; their ranks differ")
        r = int(A.shape[0])
        a = float(p["alpha"]) if "alpha" in p else alpha
        scale = 1.0 if a is None else (a / math.sqrt(r) if rank_scaled else a / r)
        modules[name] = LoraModule(name, A, B, scale)
    return Adapter(modules, source)


def read_adapter(path: str | Path) -> Adapter:
    """Read an adapter from a safetensors file or a directory holding exactly one (PEFT's
    adapter_model.safetensors is preferred); adapter_config.json beside it gives alpha / r."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        f = p / "adapter_model.safetensors"
        if not f.is_file():
            found = sorted(p.glob("*.safetensors"))
            if len(found) != 1:
                raise DataError(f"'{p}' holds {len(found)} safetensors files; point at one adapter file")
            f = found[0]
    elif p.is_file():
        f = p
    else:
        raise DataError(f"adapter '{p}' does not exist")
    alpha, rs = None, False
    conf = f.parent / "adapter_config.json"
    if conf.is_file():
        c = json.loads(conf.read_text())
        alpha, rs = c.get("lora_alpha"), bool(c.get("use_rslora", False))
        if c.get("alpha_pattern") or c.get("rank_pattern"):
            raise DataError(f"'{conf}': per-layer alpha/rank patterns are not supported")
    try:
        tensors = load_file(str(f))
    except Exception as exc:  # safetensors raises its own error types
        raise DataError(f"cannot read '{f}': {exc}") from exc
    return pair_tensors(tensors, alpha=alpha, rank_scaled=rs, source=str(f))


def check_same_layers(adapters: Sequence[Adapter]) -> list[str]:
    """The common layer list; DataError naming the first layer one adapter lacks or adds."""
    if not adapters:
        raise DataError("no adapters")
    ref = adapters[0].layers()
    for ad in adapters[1:]:
        mine = ad.layers()
        if mine != ref:
            extra = sorted(set(mine) - set(ref))
            missing = sorted(set(ref) - set(mine))
            what = f"lacks layer '{missing[0]}'" if missing else f"has extra layer '{extra[0]}'"
            raise DataError(f"{ad.source or 'an adapter'} {what} that {adapters[0].source or 'the first adapter'} "
                            f"{'has' if missing else 'lacks'}; every adapter must adapt the same layers")
        for name in ref:
            a, b = ad.modules[name], adapters[0].modules[name]
            if tuple(a.A.shape) != tuple(b.A.shape) or tuple(a.B.shape) != tuple(b.B.shape):
                raise DataError(f"{ad.source or 'an adapter'}: layer '{name}' has shapes A{tuple(a.A.shape)} "
                                f"B{tuple(a.B.shape)}, others A{tuple(b.A.shape)} B{tuple(b.B.shape)}")
    return ref


# -- spectra ------------------------------------------------------------------------------------
def qr_svdvals(B: Any, A: Any, scale: float = 1.0) -> Any:
    """Singular values of scale * B @ A (B: d_out x r, A: r x d_in) without forming the product,
    descending, padded with zeros to r values. Works in the inputs' dtype (use float64 for checks)."""
    import torch

    if B.shape[1] != A.shape[0]:
        raise ConfigError(f"B {tuple(B.shape)} and A {tuple(A.shape)} do not chain")
    r = int(A.shape[0])
    _, rb = torch.linalg.qr(B, mode="reduced")  # min(d_out, r) x r
    _, ra = torch.linalg.qr(A.T, mode="reduced")  # min(d_in, r) x r
    s = torch.linalg.svdvals(rb @ ra.T) * abs(scale)
    if s.shape[0] < r:
        s = torch.cat([s, s.new_zeros(r - s.shape[0])])
    return s


def padded_svdvals(M: Any, r: int) -> Any:
    import torch

    s = torch.linalg.svdvals(M)
    return torch.cat([s, s.new_zeros(r - s.shape[0])]) if s.shape[0] < r else s[:r]


def row_norms_feature(B: Any, A: Any, scale: float = 1.0) -> Any:
    """Parity mode only: the L2 norms of the first r rows of dW (what a batched
    (out,1,r) @ (1,r,in) product followed by 'singular values' yields). Not a spectrum."""
    r = int(A.shape[0])
    rows = B[:r] @ A
    return rows.norm(dim=1) * abs(scale)


def spectral_features(adapter: Adapter, *, include_scaling: bool = True, ba_feature: str = "svd",
                      voter_types: Sequence[str] = VOTER_TYPES, dtype: Any = None) -> dict[str, Any]:
    """Voter name 'layer|A', 'layer|B', 'layer|BA' -> numpy vector of r singular values (descending).
    `ba_feature='row_norms'` replaces the BA spectrum by the row-norm parity feature."""
    import numpy as np
    import torch

    if ba_feature not in ("svd", "row_norms"):
        raise ConfigError(f"ba_feature must be 'svd' or 'row_norms', got '{ba_feature}'")
    bad = [v for v in voter_types if v not in VOTER_TYPES]
    if bad:
        raise ConfigError(f"unknown voter type '{bad[0]}'; use {', '.join(VOTER_TYPES)}")
    dt = dtype or torch.float64
    out: dict[str, Any] = {}
    for name in adapter.layers():
        m = adapter.modules[name]
        A, B = m.A.to(dt), m.B.to(dt)
        s = m.scale if include_scaling else 1.0
        r = m.rank
        if "A" in voter_types:
            out[f"{name}|A"] = padded_svdvals(A, r).cpu().numpy()
        if "B" in voter_types:
            out[f"{name}|B"] = padded_svdvals(B, r).cpu().numpy()
        if "BA" in voter_types:
            v = qr_svdvals(B, A, s) if ba_feature == "svd" else row_norms_feature(B, A, s)
            out[f"{name}|BA"] = v.cpu().numpy()
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def norm_features(adapter: Adapter, *, include_scaling: bool = True, kind: str = "BA") -> dict[str, Any]:
    """1-D norm features per layer: ||dW||_F (kind 'BA', from the spectrum, no dense product) or
    ||A||_F and ||B||_F as separate voters (kind 'AB')."""
    import numpy as np
    import torch

    out: dict[str, Any] = {}
    for name in adapter.layers():
        m = adapter.modules[name]
        A, B = m.A.to(torch.float64), m.B.to(torch.float64)
        if kind == "BA":
            s = qr_svdvals(B, A, m.scale if include_scaling else 1.0)
            out[f"{name}|BA"] = np.array([float(torch.sqrt((s ** 2).sum()))])
        elif kind == "AB":
            out[f"{name}|A"] = np.array([float(A.norm())])
            out[f"{name}|B"] = np.array([float(B.norm())])
        else:
            raise ConfigError(f"norm kind must be 'BA' or 'AB', got '{kind}'")
    return out


def delta_norm(adapter: Adapter, *, include_scaling: bool = True) -> float:
    """||sum of dW||: the Frobenius norm over all layers' deltas together."""
    feats = norm_features(adapter, include_scaling=include_scaling)
    return float(math.sqrt(sum(float(v[0]) ** 2 for v in feats.values())))
