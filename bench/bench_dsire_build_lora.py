"""Time to train one LoRA of the DSiRe benchmark build, with the fused output-head loss against the
model's own head and torch cross-entropy, in one process, the sides alternated.

Setting: the `small` preset's LoRA (r 8, α 16, q/v of the top 10 layers of the default model),
`--steps` AdamW steps of 4 chunks of `--tokens` tokens drawn with replacement from the first n
chunks of one WikiText-103 article (n = 1..6, one LoRA per n and side), checkpoints every 2 steps,
the frozen-prefix cache on for both sides. Each side has its own copy of the model (same weights);
the side order is swapped for every n. Reports seconds per LoRA (median, IQR) per side, the
per-pair ratio and the largest difference of the final losses. Needs SOLSTICE_DATA.

    OMP_NUM_THREADS=1 python bench/bench_dsire_build_lora.py [--tokens 32] [--steps 8] OUT_DIR
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path


def main() -> None:
    from solstice.data.sources import resolve
    from solstice.models.loader import load_model
    from solstice.papers.dsire.benchmark import LoraJob, LoraTrainer, concept_chunks, read_articles
    from solstice.papers.dsire.run import wikitext_source
    from solstice.training.params import layer_indices

    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path, help="where the adapters are written")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    hf = load_model("default")
    tok = hf.tokenizer
    cid, text = read_articles(resolve(wikitext_source()))[0]
    layers = layer_indices(hf.model, a.top)
    kw = dict(r=8, alpha=16, layers=layers, targets=["q_proj", "v_proj"])
    sides = {"fused": LoraTrainer(copy.deepcopy(hf.model), tok, fused_loss=True, **kw),
             "model_head": LoraTrainer(hf.model, tok, fused_loss=False, **kw)}
    a.out.mkdir(parents=True, exist_ok=True)
    chunks = concept_chunks(tok, text, a.tokens, 6, 0)
    ckpt = list(range(2, a.steps + 1, 2)) or [a.steps]
    for name, tr in sides.items():  # warm-up, and the chunks' prefix states (the build caches them once)
        tr.train(chunks, 6, 0, steps=2, batch_size=4, lr=3e-4, checkpoints=[2], out=a.out / f"warm_{name}")
    times: dict[str, list[float]] = {k: [] for k in sides}
    last: dict[str, list[float]] = {k: [] for k in sides}
    for i, n in enumerate(range(1, 7)):
        seed = LoraJob(cid, n, 0).seed()
        for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
            rec = sides[name].train(chunks, n, seed, steps=a.steps, batch_size=4, lr=3e-4, checkpoints=ckpt,
                                    out=a.out / f"{name}_n{n}")
            times[name].append(rec["seconds"])
            last[name].append(rec["loss_last"])
    print(f"{cid}: {a.steps} steps x 4 x {a.tokens} tokens, LoRA r 8 q/v layers {layers[0]}-{layers[-1]}, n = 1..6")
    for name, v in times.items():
        q1, med, q3 = statistics.quantiles(v, n=4, method="inclusive")
        print(f"{name:11s} {med:6.2f} s/LoRA (IQR {q1:.2f}-{q3:.2f}, {len(v)} LoRAs)")
    r = [m / f for m, f in zip(times["model_head"], times["fused"])]
    q1, med, q3 = statistics.quantiles(r, n=4, method="inclusive")
    print(f"model_head / fused per LoRA: {med:.2f}x (IQR {q1:.2f}-{q3:.2f})")
    print(f"max |final loss difference| {max(abs(x - y) for x, y in zip(last['fused'], last['model_head'])):.1e}")


if __name__ == "__main__":
    main()
