"""Supervised fine-tuning of a vision-language model on LLaVA conversation JSON (MathV360K or the
synthetic set this package builds), with TRL's `SFTTrainer` (vision-language data: `messages` +
`images`; the processor handles the image tokens and TRL masks the prompt out of the loss).

    python -m solstice.papers.math_llava.train --model HuggingFaceTB/SmolVLM-256M-Instruct \\
        --data runs/math_llava/<run>/artifacts/mathv_synthetic.json \\
        --images runs/math_llava/<run>/artifacts/figures --out runs/sft --epochs 2 --lr 2e-5

The paper fine-tunes LLaVA-1.5-13B fully for 2 epochs at lr 2e-5 (cosine, warm-up 0.03, batch 16
per device, bf16, DeepSpeed ZeRO-3); that needs GPUs. On CPU only a few steps of a tiny random
vision-language model run (tests), to check the conversion, the collation and the image tokens.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.errors import DataError, require
from solstice.models.vision import load_image

log = logging.getLogger(__name__)


def llava_to_messages(records: Sequence[dict[str, Any]], image_dir: str | Path) -> list[dict[str, Any]]:
    """LLaVA records -> TRL vision rows {messages, images}: each `<image>` placeholder in a human
    turn becomes an image part; the image is read from `image_dir`."""
    root = Path(image_dir)
    rows = []
    for r in records:
        msgs = []
        n_img = 0
        for turn in r["conversations"]:
            role = "user" if turn["from"] == "human" else "assistant"
            text = turn["value"]
            parts: list[dict[str, Any]] = []
            if role == "user" and "<image>" in text:
                n_img += text.count("<image>")
                parts += [{"type": "image"}] * text.count("<image>")
                text = text.replace("<image>", "").strip()
            parts.append({"type": "text", "text": text})
            msgs.append({"role": role, "content": parts})
        images = []
        if n_img:
            path = root / r["image"]
            if not path.is_file():
                raise DataError(f"training image '{path}' is missing (record {r.get('id')})")
            images = [load_image(path)] * n_img
        rows.append({"messages": msgs, "images": images})
    return rows


def sft(model: Any, processor: Any, rows: list[dict[str, Any]], out_dir: str | Path, *, steps: int = -1,
        epochs: float = 2.0, lr: float = 2e-5, batch_size: int = 16, seed: int = 0, cpu: bool = False,
        bf16: bool = False) -> Any:
    """Run TRL's SFTTrainer; returns the trainer (its `state.log_history` holds the losses)."""
    trl = require("trl", "train", "vision-language fine-tuning")
    datasets = require("datasets", "train", "vision-language fine-tuning")
    cfg = trl.SFTConfig(output_dir=str(out_dir), max_steps=steps, num_train_epochs=epochs, learning_rate=lr,
                        lr_scheduler_type="cosine", warmup_steps=0.03, weight_decay=0.0,  # a float < 1: a ratio
                        per_device_train_batch_size=batch_size, report_to=[], logging_steps=1, save_strategy="no",
                        seed=seed, use_cpu=cpu, bf16=bf16, max_length=None)
    trainer = trl.SFTTrainer(model=model, args=cfg, train_dataset=datasets.Dataset.from_list(rows),
                             processing_class=processor)
    trainer.train()
    return trainer


def main(argv: Sequence[str] | None = None) -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a local folder or hub id of an image-text-to-text model")
    ap.add_argument("--data", required=True, help="LLaVA conversation JSON")
    ap.add_argument("--images", required=True, help="folder the records' `image` paths are relative to")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=-1)
    args = ap.parse_args(argv)
    tf = require("transformers", "hf", "vision-language fine-tuning")
    torch = require("torch", "hf")
    proc = tf.AutoProcessor.from_pretrained(args.model)
    model = tf.AutoModelForImageTextToText.from_pretrained(
        args.model, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    rows = llava_to_messages(json.loads(Path(args.data).read_text()), args.images)
    sft(model, proc, rows, args.out, steps=args.steps, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available())


if __name__ == "__main__":
    main()
