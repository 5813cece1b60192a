"""One LoRA training step of the DSiRe benchmark with the frozen-prefix cache against the full
forward, in one process, the two sides alternated.

Setting: the benchmark's LoRA (r 8, q/v of the top `--top` decoder layers) on the default model
(SmolLM2-135M), steps of `--batch` chunks of `--tokens` tokens (distinct random token chunks, the
cache already holding their prefix states, as after a LoRA's first step). Each round times
`--steps` optimizer steps per side, the order swapped every round. Prints median seconds per step
and the ratio.

    python bench/bench_dsire_prefix_step.py [--tokens 128] [--batch 4] [--top 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics


def main() -> None:
    import torch

    from solstice.models.loader import load_model
    from solstice.training.loop import TrainConfig, train
    from solstice.training.params import add_lora, layer_indices
    from solstice.training.prefix import FrozenPrefix

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    hf = load_model(a.model)
    model = hf.model
    for p in model.parameters():
        p.requires_grad_(False)
    layers = layer_indices(model, a.top)
    pm = add_lora(model, r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"], layers=layers)
    g = torch.Generator().manual_seed(0)
    chunks = [torch.randint(100, 30000, (a.tokens,), generator=g).tolist() for _ in range(a.batch * a.steps)]
    rows = [{"input_ids": c, "labels": c} for c in chunks]
    prefix = FrozenPrefix(model, min(layers))
    diff = prefix.verify(chunks[:2], atol=1e-4)
    prefix.states(chunks)  # warm cache: the benchmark reuses each chunk's states for every step
    cfg = TrainConfig(lr=3e-4, batch_size=a.batch, max_steps=a.steps, max_grad_norm=None, log_every=0)
    times = {"cached": [], "full": []}
    train(pm, hf.tokenizer, rows, cfg, prefix=prefix)  # warm-up
    for i in range(a.rounds):
        order = [("cached", prefix), ("full", None)]
        for name, pre in (order if i % 2 == 0 else order[::-1]):
            res = train(pm, hf.tokenizer, rows, cfg, prefix=pre)
            times[name].append(res.seconds / res.steps)
    c, f = statistics.median(times["cached"]), statistics.median(times["full"])
    print(f"model={a.model} tokens={a.tokens} batch={a.batch} LoRA layers={layers[0]}-{layers[-1]} of "
          f"{len(layers) + layers[0]} rounds={a.rounds} threads={torch.get_num_threads()} max|dlogit|={diff:.1e}")
    print(f"cached prefix  {c:7.3f} s/step")
    print(f"full forward   {f:7.3f} s/step")
    print(f"speed-up       {f / c:7.2f}x")


if __name__ == "__main__":
    main()
