"""Shared fine-tuning layer: supervised examples (loss on the target only), a plain training loop
with step hooks (gradient edits before clipping), a transformers Trainer integration, parameter
selection (top-k layers, LoRA through peft, trainable-state checkpoints), a frozen-prefix activation
cache for partial fine-tuning, the output head and loss fused at the target positions (`loss`), rank-classification evaluation, and MIGU gradient masking
(`solstice.training.migu`, a step hook for the loop and the Trainer).

    from solstice.training import SupervisedExample, TrainConfig, train, rank_classify
    from solstice.training.params import add_lora, train_layers, save_trainable
    from solstice.training.hf import attach_hooks          # for the transformers Trainer

Importing this package imports no torch; the submodules import it when used.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "SupervisedExample": "solstice.training.data",
    "encode_supervised": "solstice.training.data",
    "collate": "solstice.training.data",
    "render": "solstice.training.data",
    "TrainConfig": "solstice.training.loop",
    "TrainResult": "solstice.training.loop",
    "StepHook": "solstice.training.loop",
    "HookedOptimizer": "solstice.training.loop",
    "train": "solstice.training.loop",
    "rank_classify": "solstice.training.evaluate",
    "RankResult": "solstice.training.evaluate",
    "add_lora": "solstice.training.params",
    "train_layers": "solstice.training.params",
    "trainable_state": "solstice.training.params",
    "load_trainable_state": "solstice.training.params",
    "save_trainable": "solstice.training.params",
    "save_adapter": "solstice.training.params",
    "load_trainable": "solstice.training.params",
    "attach_hooks": "solstice.training.hf",
    "FrozenPrefix": "solstice.training.prefix",
    "linear_cross_entropy": "solstice.training.loss",
    "OutputHead": "solstice.training.loss",
    "MIGU": "solstice.training.migu",
    "RerankerConfig": "solstice.training.reranker",
    "train_reranker": "solstice.training.reranker",
    "rerank": "solstice.training.reranker",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'solstice.training' has no attribute '{name}'")
