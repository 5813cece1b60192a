"""The paper's observation (§2, Fig. 1): the L1-normalised output-magnitude distributions of the
linear layers differ between tasks. We measure it as mask overlap: for each task, split a sample of
its examples into two halves, accumulate each half's magnitudes with the (untrained) model, take
each layer's top-(1-q) rows, and compare Jaccard overlaps within a task (half A vs half B) with
overlaps between tasks (half A of one vs half B of another). Forward passes only."""

from __future__ import annotations

import itertools
from typing import Any


def _masks(model: Any, tok: Any, texts: list[str], cfg: Any) -> dict[str, Any]:
    import torch

    from solstice.training.data import collate, encode
    from solstice.training.migu import MIGU, magnitude_mask

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    migu = MIGU(model, cfg.threshold, include_padding=cfg.include_padding, exclude=cfg.exclude)
    model.eval()
    with migu.measuring(), torch.no_grad():
        for k in range(0, len(texts), cfg.eval_batch_size):
            rows = [{"input_ids": encode(tok, t)[-cfg.max_length :], "labels": []} for t in texts[k : k + cfg.eval_batch_size]]
            for r in rows:
                r["labels"] = r["input_ids"]
            b = collate(rows, pad)
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        mags = migu.magnitudes(normalized=True)
    return {n: magnitude_mask(m, cfg.threshold).cpu() for n, m in mags.items()}


def _jaccard(a: Any, b: Any) -> float:
    inter = int((a & b).sum())
    union = int((a | b).sum())
    return inter / union if union else 1.0


def magnitude_overlap(model: Any, tok: Any, tasks: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """Per linear layer: mean within-task and between-task Jaccard overlap of top-(1-q) masks."""
    from solstice.papers.migu.tasks import subsample

    halves: dict[str, tuple[dict, dict]] = {}
    for name, prep in tasks.items():
        exs = subsample(prep.task.train, cfg.diagnostic_examples, f"{cfg.data_seed}/{name}/diagnostic")
        texts = [prep.prompt(e.sentence) + prep.prefix + e.label for e in exs]
        h = len(texts) // 2
        if h < 1:
            continue
        halves[name] = (_masks(model, tok, texts[:h], cfg), _masks(model, tok, texts[h : 2 * h], cfg))
    names = sorted(halves)
    if len(names) < 2:
        return {"tasks": names, "units": [], "within": [], "between": []}
    units = sorted(halves[names[0]][0])
    within, between = [], []
    for u in units:
        within.append(sum(_jaccard(halves[t][0][u], halves[t][1][u]) for t in names) / len(names))
        pairs = [(s, t) for s, t in itertools.permutations(names, 2)]
        between.append(sum(_jaccard(halves[s][0][u], halves[t][1][u]) for s, t in pairs) / len(pairs))
    return {"tasks": names, "examples_per_half": cfg.diagnostic_examples // 2, "units": units,
            "within": within, "between": between}
