"""One LoRA training step of the DSiRe benchmark with the frozen-prefix cache against the full
forward, in one process, the sides alternated.

Setting (the spec's): the benchmark's LoRA (r 8, α 16, q/v of the top `--top` decoder layers) on the
default model (SmolLM2-135M), AdamW steps of `--batch` chunks of `--tokens` tokens, the loss on every
next token (as in the DSiRe build, where a chunk is its own label). Sample mix: distinct chunks of
uniformly random token ids in [100, 30000), a fresh batch per step; the cache already holds their
prefix states (as after a LoRA's first step on them). Sides, each running the same batches:

    cached        train(..., prefix=FrozenPrefix, fused_loss=True): layers 0..start-1 skipped (their
                  output read from the cache), the output head and loss in one chunked pass at the
                  target positions only (training/loss.py)
    cached_model  train(..., prefix=FrozenPrefix): the cache, the model's own head and torch
                  cross-entropy (the step before the fused loss existed)
    full          train(..., fused_loss=True), no cache: every layer runs; the same loss code as
                  `cached`, so full / cached is the cache's own effect
    peft          the ordinary PEFT step a user writes: model(input_ids, labels=input_ids).loss
                  .backward(); AdamW step; zero_grad (transformers' head on every position, its loss)

Each round runs `--steps` + 1 steps per side (the first, which carries the call's setup, is
dropped), the side order rotated every round. Reports per-step median and IQR per side and the
per-round ratios against `cached` (median and IQR), the FLOP arithmetic of one step, and the
equality of the cached step with the ordinary PEFT forward: prefix-cache logits, loss and LoRA
gradients on one batch.

    OMP_NUM_THREADS=1 python bench/bench_dsire_prefix_step.py [--tokens 128] [--batch 4] [--top 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def step_flops(config: Any, top: int, tokens: int, r: int) -> dict[str, float]:
    """Forward/backward FLOPs per token (multiply-add = 2) of a Llama-style model: the frozen
    prefix's forward, the trained suffix's forward and backward (input gradients through every
    suffix layer, LoRA weight gradients), and the output head (forward + input gradient; frozen)."""
    d, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    hd = getattr(config, "head_dim", None) or d // config.num_attention_heads
    q, kv = config.num_attention_heads * hd, config.num_key_value_heads * hd
    linear = 2 * (d * q + 2 * d * kv + q * d + 3 * d * inter)
    attn = 2 * q * tokens  # QKᵀ and AV over a causal context of tokens/2 on average
    layer = linear + attn
    lora = 2 * (r * d + r * q) + 2 * (r * d + r * kv)  # the q and v adapters' forward
    n = config.num_hidden_layers
    return {
        "prefix_fwd": (n - top) * layer,
        "suffix_fwd": top * (layer + lora),
        "suffix_bwd": top * (linear + 2 * attn + 2 * lora),
        "head_fwd": 2 * d * vocab,
        "head_bwd": 2 * d * vocab,
    }


def _q(xs: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else (xs[0],) * 3
    return med, q1, q3


def main() -> None:
    import torch

    from solstice.models.loader import load_model
    from solstice.training.loop import StepHook, TrainConfig, train
    from solstice.training.params import (
        add_lora,
        layer_indices,
        load_trainable_state,
        trainable_state,
    )
    from solstice.training.prefix import FrozenPrefix

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    hf = load_model(a.model)
    model = hf.model
    for p in model.parameters():
        p.requires_grad_(False)
    layers = layer_indices(model, a.top)
    pm = add_lora(model, r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"], layers=layers)
    with torch.no_grad():  # a trained-looking LoRA (B = 0 would make the gradients of A zero)
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    n_steps = a.steps + 1
    chunks = [torch.randint(100, 30000, (a.tokens,), generator=g).tolist() for _ in range(a.batch * n_steps)]
    rows = [{"input_ids": c, "labels": c} for c in chunks]
    prefix = FrozenPrefix(model, min(layers))
    dlogit = prefix.verify(chunks[:2], atol=1e-4)
    prefix.states(chunks)  # warm cache

    # equality on one batch: the cached fused step vs the ordinary PEFT forward
    class Grab(StepHook):
        def before_clip(self, m: Any) -> None:
            self.grads = {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.requires_grad}

    snap = trainable_state(pm)
    grab = Grab()
    one = TrainConfig(lr=3e-4, batch_size=a.batch, max_steps=1, max_grad_norm=None, log_every=0, fused_loss=True)
    res = train(pm, hf.tokenizer, rows[: a.batch], one, prefix=prefix, hooks=[grab])
    load_trainable_state(pm, snap)
    pm.train()
    ids = torch.tensor(chunks[: a.batch])
    ref = pm(input_ids=ids, labels=ids).loss
    named = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    ref_g = torch.autograd.grad(ref, [p for _, p in named])
    dloss = abs(res.losses[0] - float(ref.detach()))
    dgrad = max(float((grab.grads[n] - gr).abs().max() / gr.abs().max().clamp_min(1e-30))
                for (n, _), gr in zip(named, ref_g))
    pm.eval()

    opt = torch.optim.AdamW([p for _, p in named], lr=3e-4)

    def via_train(pre: Any, fused: bool) -> list[float]:
        cfg = TrainConfig(lr=3e-4, batch_size=a.batch, max_steps=n_steps, max_grad_norm=None, log_every=0,
                          fused_loss=fused)
        stamps: list[float] = []
        train(pm, hf.tokenizer, rows, cfg, prefix=pre, on_step=lambda s, _l: stamps.append(time.perf_counter()))
        return [b - a for a, b in zip(stamps, stamps[1:])]

    def peft_steps() -> list[float]:
        pm.train()
        stamps = []
        for s in range(n_steps):
            x = torch.tensor(chunks[s * a.batch : (s + 1) * a.batch])
            pm(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            stamps.append(time.perf_counter())
        pm.eval()
        return [b - a for a, b in zip(stamps, stamps[1:])]

    sides = {
        "cached": lambda: via_train(prefix, True),
        "cached_model": lambda: via_train(prefix, False),
        "full": lambda: via_train(None, True),
        "peft": peft_steps,
    }
    names = list(sides)
    for name in names:  # warm-up
        sides[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for i in range(a.rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            t = sides[name]()
            times[name] += t
            per_round[name].append(statistics.median(t))
        load_trainable_state(pm, snap)

    fl = step_flops(model.config, a.top, a.tokens, 8)
    cached_fl = fl["suffix_fwd"] + fl["suffix_bwd"] + (fl["head_fwd"] + fl["head_bwd"]) * (a.tokens - 1) / a.tokens
    full_fl = cached_fl + fl["prefix_fwd"]
    free_head = (fl["prefix_fwd"] + fl["suffix_fwd"] + fl["suffix_bwd"]) / (fl["suffix_fwd"] + fl["suffix_bwd"])
    print(f"model={a.model} tokens={a.tokens} batch={a.batch} LoRA r 8 on q/v of layers {layers[0]}-{layers[-1]} "
          f"of {len(layers) + layers[0]} rounds={a.rounds} steps/side/round={a.steps} threads={torch.get_num_threads()}")
    print(f"equality (cached fused step vs model(input_ids, labels=...)): max|dlogit| {dlogit:.1e}  "
          f"|dloss| {dloss:.1e}  max relative |dgrad| {dgrad:.1e}")
    print("MFLOP/token: " + "  ".join(f"{k} {v / 1e6:.1f}" for k, v in fl.items())
          + f"  -> cached {cached_fl / 1e6:.1f}, full {full_fl / 1e6:.1f}: FLOP ceiling {full_fl / cached_fl:.2f}x; "
          f"with a free head {free_head:.2f}x")
    for name in names:
        med, q1, q3 = _q(times[name])
        line = f"{name:13s} {med:7.3f} s/step (IQR {q1:.3f}-{q3:.3f}, {len(times[name])} steps)"
        if name != "cached":
            rs = [o / c for o, c in zip(per_round[name], per_round["cached"])]
            rm, r1, r3 = _q(rs)
            line += f"   {name}/cached {rm:.2f}x (IQR {r1:.2f}-{r3:.2f} over {len(rs)} rounds)"
        print(line)


if __name__ == "__main__":
    main()
