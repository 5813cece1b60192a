"""Step 4: fine-tune the student (LoRA through the training layer) on a teacher's generated data and
evaluate students by option log-likelihood on the test items."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from solstice.papers.arte import prompts as P
from solstice.papers.arte.preferences import option_correct
from solstice.papers.arte.tasks import Task


def sft_student(hf: Any, examples: Sequence[dict[str, str]], *, lr: float, epochs: float, batch_size: int,
                r: int, alpha: float, seed: int) -> Any:
    """A copy of the student's model with a LoRA trained on {question, answer} rows (loss on the
    answer only), wrapped as a model-layer HFModel."""
    from solstice.models.hf import HFModel
    from solstice.training.data import SupervisedExample
    from solstice.training.loop import TrainConfig, train
    from solstice.training.params import add_lora

    model = copy.deepcopy(hf.model)
    for p in model.parameters():
        p.requires_grad_(False)
    pm = add_lora(model, r=r, alpha=alpha, dropout=0.0, target_modules=["q_proj", "v_proj"])
    ex = [SupervisedExample(f"Question: {e['question']}\nAnswer:", " " + e["answer"]) for e in examples]
    warm = max(0, round(0.03 * len(ex) / batch_size))
    train(pm, hf.tokenizer, ex, TrainConfig(lr=lr, batch_size=batch_size, epochs=epochs, seed=seed, max_length=384,
                                            schedule="linear", warmup_steps=warm, log_every=0))
    return HFModel(hf.spec, model=pm, tokenizer=hf.tokenizer)


def evaluate(student: Any, task: Task) -> list[int]:
    """0/1 per test item: the highest-log-probability label after '<ans>' is the target."""
    prompts = [P.scoring_prompt([], it.input) for it in task.test]
    return option_correct(student, prompts, task.labels, [it.target for it in task.test])
