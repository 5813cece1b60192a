"""Reading any transformers mixture-of-experts model: one `MoELayer` per sparse block.

A `MoELayer` gives the router weight R (E, d), the routing rule (softmax over all E, top-k,
renormalised or not), each expert's (W_gate (F, d), W_up (F, d), W_down (d, F)), and the shared
experts when the family has them. Two storage layouts are read:

- fused (transformers 5: Mixtral, Qwen2/Qwen3-MoE, OLMoE, DeepSeek): `experts.gate_up_proj`
  (E, 2F, d) whose product with x splits into gate then up, and `experts.down_proj` (E, d, F);
- per-expert modules (older layouts, custom code): `experts[e]` with `w1/w3/w2` (Mixtral names:
  gate, up, down) or `gate_proj/up_proj/down_proj`.

Per-expert outputs are computed by hand (`expert_outputs`), and `recording` captures every
sparse block's input and output during a forward with hooks that are always removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from solstice.errors import CapabilityError, require


@dataclass
class MoELayer:
    """One sparse block of a model, read without copying its weights."""

    index: int  # decoder-layer index
    block: Any  # the sparse MoE module (its forward gives the block output)
    router_weight: Any  # (E, d)
    top_k: int
    renormalize: bool
    experts: Any  # the experts module (fused) or ModuleList (per-expert)
    fused: bool
    act: Any
    shared: list[Any] = field(default_factory=list)  # shared-expert modules (always active)
    shared_gate: Any = None  # Qwen2-MoE: sigmoid(shared_gate(x)) scales the shared expert

    @property
    def num_experts(self) -> int:
        return int(self.router_weight.shape[0])

    def expert_weights(self, e: int) -> tuple[Any, Any, Any]:
        """(W_gate (F, d), W_up (F, d), W_down (d, F)) of expert e, detached views."""
        if self.fused:
            gu = self.experts.gate_up_proj[e].detach()
            f = gu.shape[0] // 2
            return gu[:f], gu[f:], self.experts.down_proj[e].detach()
        mod = self.experts[e]
        for g, u, d in (("w1", "w3", "w2"), ("gate_proj", "up_proj", "down_proj")):
            if hasattr(mod, g):
                return (getattr(mod, g).weight.detach(), getattr(mod, u).weight.detach(),
                        getattr(mod, d).weight.detach())
        raise CapabilityError(f"expert {e} of layer {self.index} has no gate/up/down projections")

    def stacked(self) -> tuple[Any, Any, Any]:
        """All experts' weights stacked: (E, F, d), (E, F, d), (E, d, F)."""
        torch = require("torch", "hf")
        ws = [self.expert_weights(e) for e in range(self.num_experts)]
        return tuple(torch.stack([w[i] for w in ws]) for i in range(3))  # type: ignore[return-value]

    def scores(self, x: Any) -> Any:
        """Softmax gate scores over all E experts, (tokens, E), in float32."""
        torch = require("torch", "hf")
        logits = x.reshape(-1, x.shape[-1]).float() @ self.router_weight.detach().float().T
        return torch.softmax(logits, dim=-1)

    def route(self, x: Any) -> tuple[Any, Any, Any]:
        """(scores (T, E), top-k weights (T, k), top-k ids (T, k)) by the block's own rule."""
        torch = require("torch", "hf")
        s = self.scores(x)
        w, idx = torch.topk(s, self.top_k, dim=-1)
        if self.renormalize:
            w = w / w.sum(-1, keepdim=True)
        return s, w, idx

    def expert_outputs(self, x: Any) -> Any:
        """Every expert's output on x (tokens, d), computed by hand: (E, tokens, d) float32."""
        torch = require("torch", "hf")
        x = x.reshape(-1, x.shape[-1]).float()
        outs = []
        for e in range(self.num_experts):
            wg, wu, wd = (w.float() for w in self.expert_weights(e))
            outs.append((self.act(x @ wg.T) * (x @ wu.T)) @ wd.T)
        return torch.stack(outs)

    def intermediate(self, x: Any) -> Any:
        """act(W_gate x) per expert: (E, tokens, F) — the paper's intermediate states (analysis 8)."""
        torch = require("torch", "hf")
        x = x.reshape(-1, x.shape[-1]).float()
        return torch.stack([self.act(x @ self.expert_weights(e)[0].float().T) for e in range(self.num_experts)])

    def shared_output(self, x: Any) -> Any:
        """The shared experts' contribution (tokens, d), zero when the family has none."""
        torch = require("torch", "hf")
        x2 = x.reshape(-1, x.shape[-1])
        out = torch.zeros_like(x2, dtype=torch.float32)
        for m in self.shared:
            y = m(x2).float()
            if self.shared_gate is not None:
                y = torch.sigmoid(self.shared_gate(x2).float()) * y
            out = out + y
        return out

    def combine(self, x: Any) -> Any:
        """Σ_{top-k} w_e · expert_e(x) (+ shared experts): the block output rebuilt by hand."""
        torch = require("torch", "hf")
        _, w, idx = self.route(x)
        outs = self.expert_outputs(x)  # (E, T, d)
        t = torch.arange(outs.shape[1])
        y = sum(w[:, j, None] * outs[idx[:, j], t] for j in range(self.top_k))
        return y + self.shared_output(x)


def _decoder_layers(model: Any) -> Any:
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise CapabilityError(f"{type(model).__name__} has no decoder layers (model.model.layers)")
    return layers


def _router(block: Any) -> Any:
    for name in ("gate", "router"):
        r = getattr(block, name, None)
        if r is not None and getattr(r, "weight", None) is not None and r.weight.dim() == 2:
            return r
    return None


def _as_layer(i: int, block: Any, config: Any) -> MoELayer | None:
    router, experts = _router(block), getattr(block, "experts", None)
    if router is None or experts is None:
        return None
    if getattr(router, "e_score_correction_bias", None) is not None or getattr(router, "n_group", None):
        raise CapabilityError(
            f"layer {i}: grouped sigmoid routing (DeepSeek-V3 style) is not supported; "
            "softmax top-k routers only")
    fused = getattr(experts, "gate_up_proj", None) is not None
    if fused:
        act = experts.act_fn
    else:
        first = experts[0]
        act = getattr(first, "act_fn", None) or getattr(first, "act", None)
        if act is None:
            raise CapabilityError(f"layer {i}: cannot find the experts' activation")
    k = getattr(router, "top_k", None) or getattr(block, "top_k", None) or getattr(config, "num_experts_per_tok", None)
    if not k:
        raise CapabilityError(f"layer {i}: top-k not found on the router, block or config")
    renorm = getattr(router, "norm_topk_prob", getattr(block, "norm_topk_prob", None))
    if renorm is None:  # Mixtral's router always renormalises
        renorm = getattr(config, "norm_topk_prob", True)
    shared: list[Any] = []
    for name in ("shared_expert", "shared_experts"):
        if getattr(block, name, None) is not None:
            shared.append(getattr(block, name))
    return MoELayer(index=i, block=block, router_weight=router.weight, top_k=int(k), renormalize=bool(renorm),
                    experts=experts, fused=fused, act=act, shared=shared,
                    shared_gate=getattr(block, "shared_expert_gate", None))


def moe_layers(model: Any) -> list[MoELayer]:
    """Every sparse block of `model` (a transformers CausalLM). Dense layers (DeepSeek's layer 0,
    Qwen's `mlp_only_layers`) are skipped; a model with none raises CapabilityError."""
    config = getattr(model, "config", None)
    out = []
    for i, layer in enumerate(_decoder_layers(model)):
        block = getattr(layer, "mlp", None) or getattr(layer, "block_sparse_moe", None)
        found = _as_layer(i, block, config) if block is not None else None
        if found is not None:
            out.append(found)
    if not out:
        raise CapabilityError(f"{type(model).__name__} has no mixture-of-experts layer (a dense model); "
                              "point --model at a MoE checkpoint")
    return out


@dataclass
class Recording:
    """Per sparse layer: the block's input and output of one forward, flattened to (tokens, d)."""

    inputs: dict[int, Any] = field(default_factory=dict)
    outputs: dict[int, Any] = field(default_factory=dict)


@contextlib.contextmanager
def recording(layers: list[MoELayer]) -> Iterator[Recording]:
    """Hooks on every sparse block recording input and output; removed on exit, even on error."""
    rec = Recording()
    handles = []

    def make(i: int):
        def hook(module, args, output):
            x = args[0]
            y = output[0] if isinstance(output, tuple) else output
            rec.inputs[i] = x.detach().reshape(-1, x.shape[-1])
            rec.outputs[i] = y.detach().reshape(-1, y.shape[-1])
        return hook

    try:
        for layer in layers:
            handles.append(layer.block.register_forward_hook(make(layer.index)))
        yield rec
    finally:
        for h in handles:
            h.remove()
