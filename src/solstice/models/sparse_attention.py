"""Per-head elastic sparse attention (MoA span rules) for transformers causal LMs.

A rule (α, β) gives a head the cache size S(N) = α + β·N at total length N:

    S = ⌊α + β·N⌋, clamped to [128, N], rounded up to a multiple of 64, clamped to N again
    sink = min(S, 64), local = S − sink
    query i sees key j ≤ i   iff   rank(j) < sink  or  rank(i) − rank(j) < local

where rank counts *real* tokens (left padding is skipped), so every real row sees min(i+1, S) keys
and the sink is the first 64 real tokens. Rules are per **KV head**; query head h uses KV head
h // n_rep (the contiguous grouping of transformers' `repeat_kv`).

    plan = SparsePlan.load("plan.json", num_layers=L, num_heads=H, num_kv_heads=Hkv)
    apply_plan(model, plan, backend="sdpa" | "flex", total_length=None)   # any HF causal LM
    cache = PerHeadCache(model, total_length=N)   # sink + ring buffer per KV head, for generate
    model.generate(..., **cache_kwargs(model, cache))

Backends registered through `transformers.AttentionInterface`: `moa_sdpa` (CPU reference: SDPA
with per-head boolean masks, queries chunked) and `moa_flex` (FlexAttention `create_block_mask`
with a per-head span lookup; compiled on GPU, run eagerly on CPU where torch.compile of
flex_attention fails to build with dynamic shapes — a parity reference there, not a fast path).
The plan file is the upstream JSON `{"alphas": [[...] per layer],
"betas": [...]}`, per query head or per KV head.
"""

from __future__ import annotations

import json
import math
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.errors import CapabilityError, ConfigError, require

SINK = 64
MIN_SPAN = 128
BLOCK = 64
BACKENDS = ("sdpa", "flex")


# -- the span rule ---------------------------------------------------------------------------
def span(alpha: float, beta: float, n: int) -> int:
    """Cache size S of rule (α, β) at total length n (see the module docstring)."""
    if n <= 0:
        return 0
    s = math.floor(alpha + beta * n)
    s = min(max(s, MIN_SPAN), n)
    s = int(math.ceil(s / BLOCK) * BLOCK)
    return min(s, n)


def density(alpha: float, beta: float, n: int) -> float:
    """KV density of a rule at length n: min(1, S(n)/n)."""
    return min(1.0, span(alpha, beta, n) / n)


def sink_local(s: int) -> tuple[int, int]:
    sink = min(s, SINK)
    return sink, s - sink


# -- plans -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SparsePlan:
    """One (α, β) rule per KV head per layer: `alphas[l][g]`, `betas[l][g]`."""

    alphas: tuple[tuple[float, ...], ...]
    betas: tuple[tuple[float, ...], ...]
    n_rep: int = 1

    @property
    def num_layers(self) -> int:
        return len(self.alphas)

    @property
    def num_kv_heads(self) -> int:
        return len(self.alphas[0]) if self.alphas else 0

    def spans(self, layer: int, n: int) -> list[int]:
        return [span(a, b, n) for a, b in zip(self.alphas[layer], self.betas[layer])]

    def kv_density(self, n: int) -> float:
        """Mean KV density over all KV heads at length n."""
        d = [density(a, b, n) for la, lb in zip(self.alphas, self.betas) for a, b in zip(la, lb)]
        return sum(d) / len(d)

    def to_json(self, per: str = "head") -> dict[str, Any]:
        """Upstream format; `per="head"` expands each KV-head rule to its n_rep query heads."""
        if per not in ("head", "kv"):
            raise ConfigError(f"per must be 'head' or 'kv', not {per!r}")
        r = self.n_rep if per == "head" else 1
        return {
            "alphas": [[a for a in la for _ in range(r)] for la in self.alphas],
            "betas": [[b for b in lb for _ in range(r)] for lb in self.betas],
        }

    def save(self, path: str | Path, per: str = "head") -> None:
        Path(path).write_text(json.dumps(self.to_json(per)))

    @classmethod
    def uniform(cls, alpha: float, beta: float, num_layers: int, num_kv_heads: int, n_rep: int = 1) -> SparsePlan:
        row = tuple([float(alpha)] * num_kv_heads), tuple([float(beta)] * num_kv_heads)
        return cls(tuple([row[0]] * num_layers), tuple([row[1]] * num_layers), n_rep)

    @classmethod
    def from_json(cls, data: Any, *, num_layers: int, num_heads: int, num_kv_heads: int,
                  source: str = "plan") -> SparsePlan:
        """Read the upstream format, per query head (H entries a layer) or per KV head (H_kv)."""
        if not isinstance(data, dict) or not {"alphas", "betas"} <= set(data):
            raise ConfigError(f"{source}: a MoA plan is a JSON object with 'alphas' and 'betas' lists")
        al, be = data["alphas"], data["betas"]
        if not (isinstance(al, list) and isinstance(be, list)) or len(al) != num_layers or len(be) != num_layers:
            raise ConfigError(f"{source}: 'alphas' and 'betas' need one list per layer ({num_layers} layers)")
        n_rep = num_heads // num_kv_heads
        out_a, out_b = [], []
        for li, (ra, rb) in enumerate(zip(al, be)):
            if not (isinstance(ra, list) and isinstance(rb, list)) or len(ra) != len(rb):
                raise ConfigError(f"{source}: layer {li} needs equal-length alpha and beta lists")
            if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in ra + rb):
                raise ConfigError(f"{source}: layer {li} has a non-numeric or non-finite alpha/beta")
            if len(ra) == num_kv_heads:
                ka, kb = list(ra), list(rb)
            elif len(ra) == num_heads:
                ka, kb = ra[::n_rep], rb[::n_rep]
                for h in range(num_heads):
                    if (ra[h], rb[h]) != (ka[h // n_rep], kb[h // n_rep]):
                        raise ConfigError(
                            f"{source}: layer {li} head {h} differs from its KV group {h // n_rep}; "
                            "rules are per KV head (query head h uses KV head h // n_rep)")
            else:
                raise ConfigError(f"{source}: layer {li} has {len(ra)} rules; expected {num_heads} "
                                  f"(per head) or {num_kv_heads} (per KV head)")
            if any(b < 0 for b in kb):
                raise ConfigError(f"{source}: layer {li} has a negative beta")
            out_a.append(tuple(float(x) for x in ka))
            out_b.append(tuple(float(x) for x in kb))
        return cls(tuple(out_a), tuple(out_b), n_rep)

    @classmethod
    def load(cls, path: str | Path, **shape: int) -> SparsePlan:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"MoA plan file '{p}' does not exist")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"MoA plan file '{p}' is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
        return cls.from_json(data, source=str(p), **shape)


def model_shape(model: Any) -> dict[str, int]:
    """num_layers / num_heads / num_kv_heads of a supported HF causal LM (else CapabilityError)."""
    cfg = getattr(model, "config", None)
    name = type(model).__name__
    attn = attention_modules(model)
    h = getattr(cfg, "num_attention_heads", None)
    hkv = getattr(cfg, "num_key_value_heads", None) or h
    if not attn or h is None or len(attn) != getattr(cfg, "num_hidden_layers", -1):
        raise CapabilityError(f"MoA sparse attention does not support {name}: it needs one self-attention "
                              "module per layer with layer_idx and num_key_value_groups (Llama-style)")
    layer_types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"} or getattr(cfg, "sliding_window", None) not in (None, 0):
        raise CapabilityError(f"MoA sparse attention does not support {name}: it already mixes "
                              f"attention types {sorted(layer_types)} or a sliding window")
    if not getattr(model, "_supports_attention_backend", False):
        raise CapabilityError(f"MoA sparse attention does not support {name}: it has no attention interface")
    return {"num_layers": len(attn), "num_heads": int(h), "num_kv_heads": int(hkv)}


def attention_modules(model: Any) -> list[Any]:
    mods = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "num_key_value_groups")
            and hasattr(m, "o_proj")]
    return sorted(mods, key=lambda m: m.layer_idx)


# -- masks -----------------------------------------------------------------------------------
def real_flags(attention_mask: Any, batch: int, kv_len: int, device: Any) -> Any:
    """[b, kv] bool: which keys are real tokens, read from the last row of the 4D mask."""
    torch = require("torch", "hf")
    if attention_mask is None:
        return torch.ones(batch, kv_len, dtype=torch.bool, device=device)
    m = attention_mask[:, 0, -1, :]
    if m.dtype != torch.bool:
        m = m > torch.finfo(m.dtype).min / 2
    return m


def window_mask(real: Any, q_pos: Any, spans: Any) -> Any:
    """[b, Hkv, q, kv] bool: the MoA rule ∧ causality ∧ real keys. `real` [b, kv] bool, `q_pos`
    [q] absolute query positions, `spans` [b, Hkv] cache sizes."""
    torch = require("torch", "hf")
    rank = torch.cumsum(real.long(), dim=-1) - 1                   # rank of each key among real tokens
    rq = rank[:, q_pos]                                            # [b, q]
    kv = torch.arange(real.shape[1], device=real.device)
    causal = kv[None, :] <= q_pos[:, None]                         # [q, kv]
    sink = spans.clamp(max=SINK)                                   # [b, Hkv]
    local = spans - sink
    in_sink = rank[:, None, None, :] < sink[:, :, None, None]
    in_band = (rq[:, None, :, None] - rank[:, None, None, :]) < local[:, :, None, None]
    return (in_sink | in_band) & causal[None, None] & real[:, None, None, :]


def span_tensor(plan: SparsePlan, layer: int, n: Any) -> Any:
    """[b, Hkv] cache sizes at per-row total lengths n [b]."""
    torch = require("torch", "hf")
    rows = [[span(a, b, int(x)) for a, b in zip(plan.alphas[layer], plan.betas[layer])] for x in n.tolist()]
    return torch.tensor(rows, dtype=torch.long, device=n.device)


# -- runtime state and attention functions -----------------------------------------------------
@dataclass
class _State:
    plan: SparsePlan | None        # None = dense reference through the same code path
    total_length: int | None       # fixed N (generation); None = real tokens of each row
    backend: str = "sdpa"
    chunk: int = 1024


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REGISTERED: set[str] = set()


def _row_lengths(real: Any, total: int | None) -> Any:
    torch = require("torch", "hf")
    if total is not None:
        return torch.full((real.shape[0],), int(total), dtype=torch.long, device=real.device)
    return real.sum(-1)


def _sdpa_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                    scaling: float | None = None, dropout: float = 0.0, **kw: Any) -> tuple[Any, None]:
    torch = require("torch", "hf")
    F = torch.nn.functional
    state: _State = _STATES[module]
    layer = module.layer_idx
    cache_layer = _pending_cache_layer(module, key)
    b, h, q, _ = query.shape
    hkv, kv = key.shape[1], key.shape[2]
    n_rep = h // hkv
    if cache_layer is not None and cache_layer.prefilled:
        return cache_layer.decode_attention(query, scaling), None
    real = real_flags(attention_mask, b, kv, query.device)
    total = cache_layer.total_length if cache_layer is not None else state.total_length
    spans = None if state.plan is None else span_tensor(state.plan, layer, _row_lengths(real, total))
    keys = key.repeat_interleave(n_rep, dim=1) if n_rep > 1 else key
    vals = value.repeat_interleave(n_rep, dim=1) if n_rep > 1 else value
    outs = []
    if spans is not None:
        max_local = int((spans - spans.clamp(max=SINK)).max())
        sink_hi = int((~real).long().cumprod(-1).sum(-1).max()) + SINK   # left padding + sink
    for s0 in range(0, q, state.chunk):
        q_pos = torch.arange(kv - q + s0, kv - q + min(q, s0 + state.chunk), device=query.device)
        if attention_mask is not None:
            base = attention_mask[:, :, s0 : s0 + len(q_pos)]
            base = base if base.dtype == torch.bool else base > torch.finfo(base.dtype).min / 2
        else:
            base = (torch.arange(kv, device=query.device)[None, :] <= q_pos[:, None])[None, None]
        if spans is None:
            allowed, k_c, v_c = base.expand(b, 1, len(q_pos), kv), keys, vals
        else:
            allowed = window_mask(real, q_pos, spans) & base
            allowed = allowed.repeat_interleave(n_rep, dim=1) if n_rep > 1 else allowed
            # only the sink and the band of this chunk can be seen: skip the other keys
            lo, hi = max(0, int(q_pos[0]) - max_local + 1), int(q_pos[-1]) + 1
            cols = (torch.arange(hi, device=query.device) if lo <= sink_hi else
                    torch.cat([torch.arange(sink_hi, device=query.device), torch.arange(lo, hi, device=query.device)]))
            if len(cols) == kv:
                k_c, v_c = keys, vals
            else:
                allowed, k_c, v_c = allowed[..., cols], keys[:, :, cols], vals[:, :, cols]
        outs.append(F.scaled_dot_product_attention(query[:, :, s0 : s0 + len(q_pos)], k_c, v_c,
                                                   attn_mask=allowed, scale=scaling))
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    if cache_layer is not None:
        cache_layer.absorb(key, value, real)
    return out.transpose(1, 2).contiguous(), None


_FLEX: dict[str, Any] = {}


def _flex_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                    scaling: float | None = None, dropout: float = 0.0, **kw: Any) -> tuple[Any, None]:
    torch = require("torch", "hf")
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    state: _State = _STATES[module]
    cache_layer = _pending_cache_layer(module, key)
    if cache_layer is not None and cache_layer.prefilled:
        return cache_layer.decode_attention(query, scaling), None
    b, h, q, _ = query.shape
    hkv, kv = key.shape[1], key.shape[2]
    n_rep = h // hkv
    real = real_flags(attention_mask, b, kv, query.device)
    pad = (~real).long().cumprod(-1).sum(-1)                       # left padding per row
    total = cache_layer.total_length if cache_layer is not None else state.total_length
    if state.plan is None:
        spans = torch.full((b, hkv), kv, dtype=torch.long, device=query.device)
    else:
        spans = span_tensor(state.plan, module.layer_idx, _row_lengths(real, total))
    sink = spans.clamp(max=SINK)
    local = spans - sink
    off = kv - q

    def mask_mod(bi, hi, qi, ki):
        g = hi // n_rep
        qa = qi + off
        rk = ki - pad[bi]
        return (ki >= pad[bi]) & (ki <= qa) & ((rk < sink[bi, g]) | (qa - ki < local[bi, g]))

    bm = create_block_mask(mask_mod, b, h, q, kv, device=str(query.device))
    fn = flex_attention
    if query.device.type == "cuda":  # compiled kernels on GPU; on CPU inductor fails to build them
        if query.shape[-1] < 16:
            raise CapabilityError(f"the flex backend on CUDA needs a head dimension of at least 16 (this model's "
                                  f"is {query.shape[-1]}); use the sdpa backend")
        fn = _FLEX.setdefault("cuda", torch.compile(flex_attention, dynamic=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the eager-fallback notice on CPU
        out = fn(query, key.contiguous(), value.contiguous(), block_mask=bm, scale=scaling,
                 enable_gqa=n_rep > 1)
    if cache_layer is not None:
        cache_layer.absorb(key, value, real)
    return out.transpose(1, 2).contiguous(), None


def _moa_mask(*args: Any, **kw: Any) -> Any:
    """Always a 4D bool mask (no is_causal skip): the attention functions read padding from it."""
    from transformers.masking_utils import sdpa_mask

    kw["allow_is_causal_skip"] = False
    kw.pop("allow_is_bidirectional_skip", None)
    return sdpa_mask(*args, **kw)


def _register() -> None:
    tf = require("transformers", "hf")
    from transformers.masking_utils import AttentionMaskInterface

    for name, fn in (("moa_sdpa", _sdpa_attention), ("moa_flex", _flex_attention)):
        if name not in _REGISTERED:
            tf.AttentionInterface.register(name, fn)
            AttentionMaskInterface.register(name, _moa_mask)
            _REGISTERED.add(name)


def apply_plan(model: Any, plan: SparsePlan | None, *, backend: str = "sdpa",
               total_length: int | None = None, chunk: int = 1024) -> None:
    """Switch `model` (an HF causal LM) to MoA attention with `plan` (None = dense through the
    same code path). `total_length` fixes N for the span rule; None uses each row's real length."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown MoA backend {backend!r}; use one of {', '.join(BACKENDS)}")
    shape = model_shape(model)
    if plan is not None and (plan.num_layers != shape["num_layers"] or plan.num_kv_heads != shape["num_kv_heads"]):
        raise ConfigError(f"MoA plan has {plan.num_layers} layers × {plan.num_kv_heads} KV heads; the model has "
                          f"{shape['num_layers']} × {shape['num_kv_heads']}")
    if total_length is not None and total_length <= 0:
        raise ConfigError("total_length must be positive")
    _register()
    for m in attention_modules(model):
        _STATES[m] = _State(plan, total_length, backend, chunk)
    model.set_attn_implementation(f"moa_{backend}")


def set_total_length(model: Any, total_length: int | None) -> None:
    for m in attention_modules(model):
        if m in _STATES:
            _STATES[m].total_length = total_length


def current_plan(model: Any) -> SparsePlan | None:
    mods = attention_modules(model)
    return _STATES[mods[0]].plan if mods and mods[0] in _STATES else None


# attention module -> weak references to the PerHeadCache layers built for it
_CACHE_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def bind_cache_layer(module: Any, layer: Any) -> None:
    refs = [r for r in _CACHE_LAYERS.get(module, []) if r() is not None]
    _CACHE_LAYERS[module] = refs + [weakref.ref(layer)]


def _pending_cache_layer(module: Any, key: Any) -> Any:
    """The cache layer whose last update returned `key` (the identity ties a call to its cache)."""
    for ref in _CACHE_LAYERS.get(module, []):
        layer = ref()
        if layer is not None and layer.pending is key:
            layer.pending = None
            return layer
    return None


def __getattr__(name: str) -> Any:
    if name == "PerHeadCache":
        from solstice.models.sparse_cache import PerHeadCache

        return PerHeadCache
    raise AttributeError(name)


__all__ = ["SparsePlan", "PerHeadCache",  # noqa: F822 (PerHeadCache: lazy, module __getattr__)
           "apply_plan", "span", "density", "window_mask", "model_shape",
           "set_total_length", "current_plan", "attention_modules"]
