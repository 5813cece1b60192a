"""Step 3: align the teacher with the student's preferences by DPO (TRL `DPOTrainer`, LoRA through
`peft_config`, so the frozen reference is the base model with the adapter disabled — no second copy).
With the LoRA up-matrices starting at zero the policy equals the reference and the first step's loss
is ln 2."""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

from solstice.errors import require

log = logging.getLogger(__name__)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def lora_config(r: int, alpha: float) -> Any:
    peft = require("peft", "train", "LoRA for DPO")
    return peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none",
                           task_type="CAUSAL_LM")


def dpo_align(model: Any, tokenizer: Any, pairs: list[dict[str, str]], *, out_dir: Path, lr: float, beta: float,
              epochs: float, batch_size: int, r: int, alpha: float, seed: int, max_length: int = 512,
              copy_model: bool = True) -> tuple[Any, list[dict[str, float]]]:
    """DPO-train a LoRA on (a copy of) `model` over {prompt, chosen, rejected} text rows; returns the
    peft model (eval mode) and the trainer's log history. 10% linear warm-up, then cosine (paper)."""
    require("trl", "train", "DPO")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        from solstice.errors import DataError

        raise DataError("no DPO pairs: every draft scored the same; nothing to align on")
    import torch

    base = copy.deepcopy(model) if copy_model else model
    gpu = torch.cuda.is_available()  # fp32 on CPU (spec); bf16 where the GPU has it
    steps = max(1, math.ceil(len(pairs) / batch_size) * math.ceil(epochs))
    from solstice.core import distributed

    world = distributed.world_size()  # under torchrun the Trainer shards; `batch_size` stays the global batch
    if batch_size % world:
        from solstice.errors import ConfigError

        raise ConfigError(f"DPO batch size {batch_size} does not split over {world} ranks; use a multiple of {world}")
    args = DPOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=batch_size // world, num_train_epochs=epochs,
        learning_rate=lr, beta=beta, loss_type="sigmoid", lr_scheduler_type="cosine",
        warmup_steps=max(0, round(0.1 * steps)), logging_steps=1, save_strategy="no", report_to=[],
        seed=seed, data_seed=seed, max_length=max_length, dataset_num_proc=None, disable_tqdm=True,
        use_cpu=not gpu, bf16=bool(gpu and torch.cuda.is_bf16_supported()),
    )
    trainer = DPOTrainer(model=base, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
                         peft_config=lora_config(r, alpha))
    trainer.train()
    pm = trainer.model
    pm.eval()
    return pm, [dict(h) for h in trainer.state.log_history]
