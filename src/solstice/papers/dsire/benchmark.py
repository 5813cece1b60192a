"""A LoRA-WiSE-style benchmark built locally: text LoRAs with known dataset sizes.

One concept = one WikiText-103 article; one sample = one fixed-length token chunk of it. For each
(concept, size n, replicate) a LoRA (q/v projections of the top decoder layers) is trained with
the project's training loop for a fixed number of steps on batches drawn with replacement from the
concept's first n chunks (a seeded per-concept order, so larger sets contain the smaller ones).
Lower layers are frozen and read once per chunk through the frozen-prefix cache, and the output head
and loss run as one chunked pass (`TrainConfig(fused_loss=True)`, checked against the model's own
logits at the start of every LoRA). Checkpoints are
ordinary PEFT adapter folders (adapter_config.json + adapter_model.safetensors):

    <root>/<concept>/n<n>_r<rep>/step<k>/

A LoRA's seed is a hash of (concept, n, replicate), so any subset of LoRAs can be (re)built in any
order and gives the same weights.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraJob:
    concept: str
    n: int
    rep: int

    @property
    def id(self) -> str:
        return f"{self.concept}/n{self.n}_r{self.rep}"

    def seed(self, base: int = 0) -> int:
        h = hashlib.sha256(f"{base}/{self.concept}/{self.n}/{self.rep}".encode()).hexdigest()
        return int(h[:8], 16)


def read_articles(path: Path) -> list[tuple[str, str]]:
    """(concept id, text) per article of the one-column WikiText CSV; the id is a slug of the
    article's ' = Title = ' heading."""
    csv.field_size_limit(1 << 30)
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or not row[0].strip():
                continue
            text = row[0]
            m = re.search(r"^\s*=\s*([^=\n]+?)\s*=\s*$", text, flags=re.M)
            title = m.group(1) if m else f"article{i}"
            slug = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:40] or f"article{i}"
            out.append((f"{i:02d}_{slug}", text))
    if not out:
        raise DataError(f"'{path}' holds no articles")
    return out


def concept_chunks(tok: Any, text: str, chunk_tokens: int, need: int, seed: int) -> list[list[int]]:
    """`need` chunks of exactly `chunk_tokens` tokens from `text`, in a seeded order."""
    import numpy as np

    ids = tok(text, add_special_tokens=False)["input_ids"]
    chunks = [ids[i : i + chunk_tokens] for i in range(0, len(ids) - chunk_tokens + 1, chunk_tokens)]
    if len(chunks) < need:
        raise DataError(f"an article gives {len(chunks)} chunks of {chunk_tokens} tokens; {need} are needed")
    order = np.random.default_rng(seed).permutation(len(chunks))
    return [chunks[int(i)] for i in order[:need]]


def select_concepts(articles: list[tuple[str, str]], tok: Any, n_concepts: int, chunk_tokens: int,
                    need: int) -> list[tuple[str, str]]:
    """The first `n_concepts` articles long enough for `need` chunks."""
    out = []
    for cid, text in articles:
        if len(tok(text, add_special_tokens=False)["input_ids"]) >= need * chunk_tokens:
            out.append((cid, text))
        if len(out) == n_concepts:
            return out
    raise DataError(f"only {len(out)} articles are long enough for {need} chunks of {chunk_tokens} tokens; "
                    f"{n_concepts} concepts were asked for")


class LoraTrainer:
    """Holds the base model with LoRA slots on the top layers and trains one LoRA per job."""

    def __init__(self, model: Any, tok: Any, *, r: int, alpha: float, layers: Sequence[int],
                 targets: Sequence[str], prefix_cache: bool = True, fused_loss: bool = True) -> None:
        from solstice.training.params import add_lora

        for p in model.parameters():
            p.requires_grad_(False)
        self.tok = tok
        self.fused_loss = fused_loss
        self.peft = add_lora(model, r=r, alpha=alpha, dropout=0.0, target_modules=list(targets), layers=layers)
        self.prefix = None
        if prefix_cache:
            from solstice.training.prefix import FrozenPrefix

            self.prefix = FrozenPrefix(model, min(layers), batch_size=8)

    def verify(self, seqs: Sequence[Sequence[int]]) -> float | None:
        return self.prefix.verify(seqs, atol=1e-4) if self.prefix is not None else None

    def reset(self, seed: int) -> None:
        """Fresh LoRA weights (peft's own init: Kaiming-uniform A, B = 0) from `seed`."""
        import torch

        torch.manual_seed(seed)
        for m in self.peft.modules():
            if hasattr(m, "reset_lora_parameters") and hasattr(m, "lora_A") and "default" in m.lora_A:
                m.reset_lora_parameters("default", True)

    def train(self, chunks: list[list[int]], n: int, seed: int, *, steps: int, batch_size: int, lr: float,
              checkpoints: Sequence[int], out: Path) -> dict[str, Any]:
        import numpy as np

        from solstice.training.loop import TrainConfig, train
        from solstice.training.params import save_adapter

        self.reset(seed)
        rng = np.random.default_rng(seed)
        draw = rng.integers(0, n, size=steps * batch_size)
        rows = [{"input_ids": chunks[int(i)], "labels": chunks[int(i)]} for i in draw]
        saved: list[str] = []

        def on_step(step: int, loss: float) -> None:
            if step + 1 in checkpoints:
                d = out / f"step{step + 1}"
                save_adapter(self.peft, d)  # rank 0 writes under torchrun
                saved.append(d.name)

        cfg = TrainConfig(lr=lr, batch_size=batch_size, epochs=1.0, max_steps=steps, max_grad_norm=None,
                          schedule="constant", seed=seed, max_length=max(len(c) for c in chunks) + 1,
                          log_every=0, fused_loss=self.fused_loss)
        t0 = time.perf_counter()
        res = train(self.peft, self.tok, rows, cfg, on_step=on_step, prefix=self.prefix)
        s = res.summary()
        return {"steps": res.steps, "loss_first": s["loss_first"], "loss_last": s["loss_last"],
                "seconds": round(time.perf_counter() - t0, 2), "checkpoints": saved}
