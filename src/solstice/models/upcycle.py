"""Sparse upcycling: a dense Llama-family model → a Mixtral-architecture mixture of experts.

Every dense FFN (W_gate, W_up, W_down) becomes E experts in the fused transformers layout
(`experts.gate_up_proj` (E, 2F, d), `experts.down_proj` (E, d, F)) with a softmax top-k router
that renormalises the chosen weights — the way Mixtral is believed to have been built from Mistral.

Expert initialisation:
- `copy`: every expert is the dense FFN (+ Gaussian noise of `noise` × each weight's std);
- `permute`: every expert is the dense FFN with an independent random permutation of its F
  neurons (rows of gate/up, columns of down) — the same function, a known ground truth for
  neuron matching (+ the same optional noise).
With noise 0 both are function-preserving: the renormalised top-k weights sum to 1 and every
expert computes the dense FFN, so the logits equal the dense model's whatever the router says.
Router init: zero mean, std `router_std` (0 gives uniform scores).

The result is a plain `MixtralForCausalLM`: `save_pretrained(dir)` and `hf:<dir>` loads it.
Mixtral has an MoE block in every layer, so every layer is upcycled (`layers` may not pick a subset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solstice.errors import CapabilityError, ConfigError, require


@dataclass
class UpcycleInfo:
    experts: int
    top_k: int
    init: str
    noise: float
    router_std: float
    permutations: list[list[Any]]  # per layer, per expert: the neuron permutation (permute mode)


def upcycle(dense: Any, *, experts: int = 8, top_k: int = 2, init: str = "copy", noise: float = 0.0,
            router_std: float = 0.02, aux_loss_coef: float = 0.01, seed: int = 0) -> tuple[Any, UpcycleInfo]:
    """Upcycle a dense Llama-family CausalLM into a `MixtralForCausalLM` (float32)."""
    torch = require("torch", "hf")
    tf = require("transformers", "hf")
    if init not in ("copy", "permute"):
        raise ConfigError(f"upcycle init must be 'copy' or 'permute', not '{init}'")
    if not 1 <= top_k <= experts:
        raise ConfigError(f"top_k must be in 1..{experts}, not {top_k}")
    c = dense.config
    if getattr(c, "model_type", "") not in ("llama", "mistral"):
        raise CapabilityError(f"upcycling supports Llama/Mistral models, not '{getattr(c, 'model_type', '?')}'")
    if getattr(c, "mlp_bias", False) or getattr(c, "attention_bias", False):
        raise CapabilityError("upcycling needs a model without MLP/attention biases (Mixtral has none)")
    d = c.to_dict()
    for k in ("architectures", "model_type", "transformers_version", "mlp_bias", "attention_bias",
              "pretraining_tp", "head_dim"):
        d.pop(k, None)
    cfg = tf.MixtralConfig(**{k: v for k, v in d.items() if k in tf.MixtralConfig().to_dict() or k.endswith("_id")},
                           num_local_experts=experts, num_experts_per_tok=top_k, router_aux_loss_coef=aux_loss_coef,
                           sliding_window=None)
    cfg.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    from transformers.initialization import no_init_weights

    with no_init_weights():  # every weight is written below; random init of E× the FFN is slow
        moe = tf.MixtralForCausalLM(cfg).float()
    dsd = {k: v.float() for k, v in dense.state_dict().items()}
    missing, unexpected = moe.load_state_dict(
        {k: v for k, v in dsd.items() if ".mlp." not in k}, strict=False)
    bad = [k for k in missing if ".mlp." not in k and not k.endswith("lm_head.weight")]
    if bad or unexpected:
        raise CapabilityError(f"upcycle: parameters do not line up (missing {bad[:3]}, unexpected {unexpected[:3]})")
    if getattr(cfg, "tie_word_embeddings", False):
        moe.tie_weights()
    gen = torch.Generator().manual_seed(seed)
    perms: list[list[Any]] = []
    with torch.no_grad():
        for i, layer in enumerate(moe.model.layers):
            p = f"model.layers.{i}.mlp."
            wg, wu, wd = dsd[p + "gate_proj.weight"], dsd[p + "up_proj.weight"], dsd[p + "down_proj.weight"]
            F = wg.shape[0]
            gu_p, dn_p = layer.mlp.experts.gate_up_proj, layer.mlp.experts.down_proj
            sg, su, sd = (float(w.std()) for w in (wg, wu, wd))
            lp = []
            for e in range(experts):
                perm = torch.randperm(F, generator=gen) if init == "permute" else torch.arange(F)
                lp.append(perm)
                torch.index_select(wg, 0, perm, out=gu_p[e, :F])
                torch.index_select(wu, 0, perm, out=gu_p[e, F:])
                torch.index_select(wd, 1, perm, out=dn_p[e])
                if noise > 0:
                    for view, sd_ in ((gu_p[e, :F], sg), (gu_p[e, F:], su), (dn_p[e], sd)):
                        view.add_(torch.randn(view.shape, generator=gen), alpha=noise * sd_)
            w = layer.mlp.gate.weight
            w.copy_(torch.randn(w.shape, generator=gen) * router_std)
            perms.append(lp)
    moe.eval()
    return moe, UpcycleInfo(experts, top_k, init, noise, router_std, perms)


def train_only_moe(model: Any) -> int:
    """Freeze everything but the MoE blocks (experts and routers); returns the trainable count."""
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad = ".mlp." in name
        n += p.numel() if p.requires_grad else 0
    if n == 0:
        raise CapabilityError("no MoE parameters (…mlp.…) to train")
    return n
