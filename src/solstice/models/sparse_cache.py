"""PerHeadCache: a transformers `Cache` whose KV memory is proportional to MoA density.

Each layer keeps, per group of KV heads sharing a cache size S (a MoA layer has ≤ 2 rules), one
tensor [b, heads, S, d] for keys and one for values: slots [0, sink) hold the first `sink` real
tokens, slots [sink, S) are a ring buffer holding the last `local` real tokens (token of rank t ≥
sink lives in slot sink + (t − sink) mod local). The prefill is computed with the full keys under
the MoA mask and then compressed; each decode step writes one slot and attends over the buffers.

    apply_plan(model, plan)
    cache = PerHeadCache(model, total_length=prompt_len + max_new_tokens)
    model.generate(input_ids, attention_mask=..., **cache_kwargs(model, cache))   # solstice.models.kv

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
        self.num_kv_heads = len(alphas)
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
        self.count: Any = None
        self._index: list[Any] = []

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        self.device = key_states.device
        self.is_initialized = True
        # KV heads of each group: a slice when contiguous (a view, no gather), else an index tensor
        self._index = []
        for heads, *_ in self.groups:
            if heads == list(range(heads[0], heads[-1] + 1)):
                self._index.append(slice(heads[0], heads[-1] + 1))
            else:
                self._index.append(torch.tensor(heads, device=key_states.device))

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
        """Compress a prefill's keys/values [b, Hkv, n, d] (`real` [b, n] marks real tokens)."""
        if not self.is_initialized:
            self.lazy_initialization(key, value)
        b, _, _, d = key.shape
        self.count = real.sum(-1).to(torch.long)
        self.k, self.v = [], []
        for (_heads, s, sink, local), hidx in zip(self.groups, self._index):
            kb = key.new_zeros(b, len(_heads), s, d)
            vb = value.new_zeros(b, len(_heads), s, d)
            kg, vg = key[:, hidx], value[:, hidx]
            for r in range(b):
                idx = real[r].nonzero()[:, 0]
                n = len(idx)
                ns = min(sink, n)
                kb[r, :, :ns] = kg[r][:, idx[:ns]]
                vb[r, :, :ns] = vg[r][:, idx[:ns]]
                if local > 0 and n > sink:
                    t = torch.arange(max(sink, n - local), n, device=key.device)
                    slots = sink + (t - sink) % local
                    kb[r, :, slots] = kg[r][:, idx[t]]
                    vb[r, :, slots] = vg[r][:, idx[t]]
            self.k.append(kb)
            self.v.append(vb)
        self.prefilled = True

    def _write(self, key: Any, value: Any) -> None:
        """Write one decode token per row, all rows at once: the token of rank t goes to slot t
        while t < sink, else to sink + (t − sink) mod local (nowhere when the rule has no band)."""
        t = self.count
        rows = torch.arange(key.shape[0], device=key.device)
        for gi, ((_heads, _s, sink, local), hidx) in enumerate(zip(self.groups, self._index)):
            if local > 0:
                slot, r = torch.where(t < sink, t, sink + (t - sink) % local), rows
            else:
                keep = t < sink
                slot, r = t[keep], rows[keep]
            self.k[gi][r, :, slot] = key[r, hidx, 0] if isinstance(hidx, slice) else key[r][:, hidx, 0]
            self.v[gi][r, :, slot] = value[r, hidx, 0] if isinstance(hidx, slice) else value[r][:, hidx, 0]
        self.count = t + 1

    def decode_attention(self, query: Any, scaling: float | None) -> Any:
        """One query token [b, H, 1, d] against the per-head buffers → [b, 1, H, d].

        The n_rep query heads of a KV head are packed as n_rep queries of that head ([b, Hkv, n_rep,
        d]), so SDPA reads each buffer once, in place (no repeat of keys, no gather); one SDPA call
        per group of equal spans (≤ 2 per layer under the MILP's rule limit). Slots [0, min(count,
        S)) are filled (tokens fill slots in rank order); once every row has filled its buffer no
        mask is passed at all.
        """
        F = torch.nn.functional
        b, h, _, d = query.shape
        q = query.reshape(b, self.num_kv_heads, self.n_rep, d)
        outs = []
        for gi, ((_heads, s, _sink, _local), hidx) in enumerate(zip(self.groups, self._index)):
            mask = None
            if int(self.count.min()) < s:
                mask = (torch.arange(s, device=query.device)[None, :] < self.count[:, None])[:, None, None, :]
            outs.append(F.scaled_dot_product_attention(q[:, hidx], self.k[gi], self.v[gi], attn_mask=mask,
                                                       scale=scaling))
        if len(outs) == 1:
            out = outs[0]
        else:
            out = q.new_empty(q.shape)
            for o, hidx in zip(outs, self._index):
                out[:, hidx] = o
        return out.reshape(b, 1, h, d)

    # -- Cache bookkeeping --------------------------------------------------------------------
    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def get_seq_length(self) -> int:
        return self.seen

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.seen, self.prefilled, self.pending, self.count = 0, False, None, None
        self.k, self.v = [], []

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
