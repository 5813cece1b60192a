"""PerHeadCache: a transformers `Cache` whose KV memory is proportional to MoA density.

Each layer keeps, per group of KV heads sharing a cache size S (a MoA layer has ≤ 2 rules), one
tensor [b, heads, S, d] for keys and one for values: slots [0, sink) hold the first `sink` real
tokens, slots [sink, S) are a ring buffer holding the last `local` real tokens (token of rank t ≥
sink lives in slot sink + (t − sink) mod local). The prefill is computed with the full keys under
the MoA mask and then compressed; each decode step writes one slot and attends over the buffers.

    apply_plan(model, plan)
    cache = PerHeadCache(model, total_length=prompt_len + max_new_tokens)
    model.generate(input_ids, attention_mask=..., cache=cache)

Memory: Σ_heads S_h · d · 2 per layer (`cache.nbytes()`), against N · d · 2 · H_kv dense.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from solstice.errors import BackendError, ConfigError
from solstice.models.sparse_attention import (
    attention_modules,
    bind_cache_layer,
    current_plan,
    sink_local,
    span,
)


class PerHeadLayer(CacheLayerMixin):
    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, alphas: tuple[float, ...], betas: tuple[float, ...], total_length: int, n_rep: int) -> None:
        super().__init__()
        self.total_length = int(total_length)
        self.n_rep = n_rep
        spans = [span(a, b, self.total_length) for a, b in zip(alphas, betas)]
        by_size: dict[int, list[int]] = {}
        for g, s in enumerate(spans):
            by_size.setdefault(s, []).append(g)
        self.groups = [(heads, s, *sink_local(s)) for s, heads in sorted(by_size.items())]
        self.seen = 0
        self.prefilled = False
        self.pending: Any = None
        self.k: list[Any] = []
        self.v: list[Any] = []
        self.valid: list[Any] = []
        self.count: Any = None

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.prefilled:
            if key_states.shape[2] != 1:
                raise BackendError("PerHeadCache decodes one token at a time after the prefill")
            self._write(key_states, value_states)
        self.seen += key_states.shape[2]
        self.pending = key_states
        return key_states, value_states

    # -- prefill: keep the sink and the last `local` real tokens of every row ----------------
    def absorb(self, key: Any, value: Any, real: Any) -> None:
        b, _, _, d = key.shape
        self.count = real.sum(-1).to(torch.long)
        self.k, self.v, self.valid = [], [], []
        for heads, s, sink, local in self.groups:
            kb = key.new_zeros(b, len(heads), s, d)
            vb = value.new_zeros(b, len(heads), s, d)
            ok = torch.zeros(b, s, dtype=torch.bool, device=key.device)
            for r in range(b):
                idx = real[r].nonzero()[:, 0]
                n = len(idx)
                ns = min(sink, n)
                kb[r, :, :ns] = key[r, heads][:, idx[:ns]]
                vb[r, :, :ns] = value[r, heads][:, idx[:ns]]
                ok[r, :ns] = True
                if local > 0 and n > sink:
                    t = torch.arange(max(sink, n - local), n, device=key.device)
                    slots = sink + (t - sink) % local
                    kb[r, :, slots] = key[r, heads][:, idx[t]]
                    vb[r, :, slots] = value[r, heads][:, idx[t]]
                    ok[r, slots] = True
            self.k.append(kb)
            self.v.append(vb)
            self.valid.append(ok)
        self.prefilled = True

    def _write(self, key: Any, value: Any) -> None:
        for gi, (heads, _s, sink, local) in enumerate(self.groups):
            for r in range(key.shape[0]):
                t = int(self.count[r])
                if t < sink:
                    slot = t
                elif local > 0:
                    slot = sink + (t - sink) % local
                else:
                    continue  # no band: the rule keeps only the sink
                self.k[gi][r, :, slot] = key[r, heads, 0]
                self.v[gi][r, :, slot] = value[r, heads, 0]
                self.valid[gi][r, slot] = True
        self.count = self.count + 1

    def decode_attention(self, query: Any, scaling: float | None) -> Any:
        """One query token [b, H, 1, d] against the per-head buffers → [b, 1, H, d]."""
        F = torch.nn.functional
        out = torch.empty_like(query)
        for gi, (heads, _s, _sink, _local) in enumerate(self.groups):
            qidx = torch.tensor([g * self.n_rep + j for g in heads for j in range(self.n_rep)], device=query.device)
            kg, vg = self.k[gi], self.v[gi]
            if self.n_rep > 1:
                kg = kg.repeat_interleave(self.n_rep, dim=1)
                vg = vg.repeat_interleave(self.n_rep, dim=1)
            mask = self.valid[gi][:, None, None, :]
            out[:, qidx] = F.scaled_dot_product_attention(query[:, qidx], kg, vg, attn_mask=mask, scale=scaling)
        return out.transpose(1, 2).contiguous()

    # -- Cache bookkeeping --------------------------------------------------------------------
    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def get_seq_length(self) -> int:
        return self.seen

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.seen, self.prefilled, self.pending, self.count = 0, False, None, None
        self.k, self.v, self.valid = [], [], []

    def reorder_cache(self, beam_idx: Any) -> None:
        raise BackendError("PerHeadCache does not support beam search")

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


class PerHeadCache(Cache):
    """Sink + ring buffer per KV head for a model switched to MoA with `apply_plan`."""

    def __init__(self, model: Any, total_length: int) -> None:
        plan = current_plan(model)
        impl = getattr(model.config, "_attn_implementation", "")
        if plan is None or not str(impl).startswith("moa_"):
            raise ConfigError("PerHeadCache needs a model switched to MoA attention with a plan (apply_plan)")
        if total_length <= 0:
            raise ConfigError("PerHeadCache needs a positive total_length (prompt + new tokens)")
        layers = [PerHeadLayer(plan.alphas[i], plan.betas[i], total_length, plan.n_rep) for i in range(plan.num_layers)]
        super().__init__(layers=layers)
        self.total_length = int(total_length)
        for m in attention_modules(model):
            bind_cache_layer(m, layers[m.layer_idx])

    def nbytes(self) -> int:
        """Bytes held by the key and value buffers."""
        return sum(layer.nbytes() for layer in self.layers)
