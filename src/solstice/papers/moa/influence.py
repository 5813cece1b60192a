"""MoA influence profiling (paper §4.1 / upstream profiler, described not copied).

First-order estimate of the loss change when key j is dropped from query row i and the row is
renormalised:

    E[h, i, j] = −A_ij · (G_ij − Σ_k A_ik G_ik) / (1 − A_ij + eps),    row 0: −A_0j · G_0j

with A = softmax(QKᵀ·d^-½ + causal) in fp32 and G = ∂L/∂A = dO·Vᵀ (O = A·V, dO = gradient of the
attention output before o_proj). Only Q, K, V and dO are kept per layer (O(P·d)); A, G and E are
recomputed one head at a time and sum-pooled into b×b blocks at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solstice.errors import DataError


def influence(a: Any, g: Any, eps: float = 1e-10) -> Any:
    """E for one head: a, g [q, k] (row i = absolute position i, causal). Returns [q, k]."""
    rowdot = (a * g).sum(-1, keepdim=True)                       # Σ_k A_ik G_ik
    e = -a * (g - rowdot) / (1.0 - a + eps)
    e[0] = -a[0] * g[0]                                          # a single key: no renormalisation
    return e


def block_pool(x: Any, block: int) -> Any:
    """Sum-pool a [P, P] map into [P/b, P/b] blocks (P a multiple of b)."""
    p = x.shape[-1]
    n = p // block
    return x[..., : n * block, : n * block].reshape(*x.shape[:-2], n, block, n, block).sum(dim=(-3, -1))


def head_influence(q: Any, k: Any, v: Any, do: Any, scale: float, block: int) -> Any:
    """Pooled |E| [P/b, P/b] of one head from its q, k, v, dO [P, d] (fp32, causal)."""
    torch = _torch()
    p = q.shape[0]
    scores = (q @ k.T) * scale
    causal = torch.ones(p, p, dtype=torch.bool, device=q.device).tril()
    a = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    g = do @ v.T                                                  # G = dO · Vᵀ  (= ∂L/∂A)
    e = influence(a, g).abs().masked_fill(~causal, 0.0)
    return block_pool(e, block)


class Recorder:
    """An attention function (AttentionInterface signature) that computes dense causal SDPA and
    keeps detached q/k/v per layer plus dO through a hook on the output."""

    def __init__(self) -> None:
        self.qkv: dict[int, tuple[Any, Any, Any, float]] = {}
        self.do: dict[int, Any] = {}

    def __call__(self, module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                 scaling: float | None = None, dropout: float = 0.0, **kw: Any) -> tuple[Any, None]:
        torch = _torch()
        layer = module.layer_idx
        n_rep = query.shape[1] // key.shape[1]
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        self.qkv[layer] = (query.detach(), key.detach(), value.detach(), scale)
        kk = key.repeat_interleave(n_rep, 1) if n_rep > 1 else key
        vv = value.repeat_interleave(n_rep, 1) if n_rep > 1 else value
        out = torch.nn.functional.scaled_dot_product_attention(query, kk, vv, is_causal=True, scale=scale)
        out = out.transpose(1, 2).contiguous()                    # [b, q, H, d]
        if out.requires_grad:
            out.register_hook(lambda grad, _l=layer: self.do.__setitem__(_l, grad.detach().transpose(1, 2)))
        return out, None

    def clear(self) -> None:
        self.qkv.clear()
        self.do.clear()


def profile_sequence(model: Any, recorder: Recorder, ids: Any, loss_mask: Any, block: int) -> Any:
    """Pooled influence [L, H, P/b, P/b] of one sequence `ids` [P] (loss on positions where
    `loss_mask` [P] is true, predicting the next token). The model must run `recorder`."""
    torch = _torch()
    recorder.clear()
    emb = model.get_input_embeddings()(ids[None]).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb).logits[0, :-1].float()
    target = ids[1:]
    m = loss_mask[1:]
    if not bool(m.any()):
        raise DataError("a calibration sequence has no response tokens to profile")
    loss = torch.nn.functional.cross_entropy(logits[m], target[m])
    torch.autograd.grad(loss, [emb])
    layers = sorted(recorder.qkv)
    out = []
    for layer in layers:
        q, k, v, scale = recorder.qkv[layer]
        do = recorder.do[layer]
        n_rep = q.shape[1] // k.shape[1]
        heads = []
        for h in range(q.shape[1]):
            g = h // n_rep                                         # contiguous GQA grouping (repeat_kv)
            heads.append(head_influence(q[0, h].float(), k[0, g].float(), v[0, g].float(), do[0, h].float(),
                                        scale, block))
        out.append(torch.stack(heads))
    recorder.clear()
    return torch.stack(out)


def to_units(pooled: np.ndarray, n_rep: int, how: str = "sum") -> np.ndarray:
    """[L, H, nb, nb] per query head → [L·H_kv, nb, nb] per KV head (contiguous groups; sum is the
    additive first-order effect, max the upstream-parity option)."""
    L, H = pooled.shape[:2]
    x = pooled.reshape(L, H // n_rep, n_rep, *pooled.shape[2:])
    agg = x.sum(axis=2) if how == "sum" else x.max(axis=2)
    return agg.reshape(L * (H // n_rep), *pooled.shape[2:])


def _torch() -> Any:
    import torch

    return torch
