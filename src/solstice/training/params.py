"""Which parameters train: all, the top-k decoder layers, or LoRA adapters (peft); and saving,
restoring and snapshotting exactly the trainable ones.

    train_layers(model, top=12)        # freeze all but the last 12 decoder layers
    peft_model = add_lora(model, r=8, alpha=32, layers=[18, 19])
    snap = trainable_state(model); ...; load_trainable_state(model, snap)
    save_trainable(model, "stage1.safetensors"); load_trainable(model, "stage1.safetensors")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError, require


def decoder_layers(model: Any) -> Any:
    """The model's stack of transformer blocks: the longest ModuleList whose entries share one
    class (model.model.layers in Llama-style models, transformer.h in GPT-2, ...)."""
    import torch

    best = None
    for _, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0:
            if len({type(m) for m in mod}) == 1 and (best is None or len(mod) > len(best)):
                best = mod
    if best is None:
        raise ConfigError(f"cannot find the decoder layers of {type(model).__name__}")
    return best


def layer_indices(model: Any, top: int | None = None, layers: Sequence[int] | None = None) -> list[int]:
    n = len(decoder_layers(model))
    if layers is not None:
        bad = [i for i in layers if not -n <= i < n]
        if bad:
            raise ConfigError(f"layer index {bad[0]} is out of range for a model with {n} layers")
        return sorted({i % n for i in layers})
    if top is None or top <= 0 or top >= n:
        return list(range(n))
    return list(range(n - top, n))


def train_layers(model: Any, top: int | None = None, *, layers: Sequence[int] | None = None) -> list[int]:
    """Freeze every parameter, then unfreeze the chosen decoder layers (the last `top`, or the
    given indices; all layers plus embeddings and head when both are None). Returns the indices."""
    idx = layer_indices(model, top, layers)
    everything = top is None and layers is None
    for p in model.parameters():
        p.requires_grad_(everything)
    if not everything:
        stack = decoder_layers(model)
        for i in idx:
            for p in stack[i].parameters():
                p.requires_grad_(True)
    return idx


def add_lora(
    model: Any,
    *,
    r: int = 8,
    alpha: float = 32,
    dropout: float = 0.1,
    target_modules: str | Sequence[str] = "all-linear",
    layers: Sequence[int] | None = None,
    adapter_name: str = "default",
) -> Any:
    """Wrap `model` with LoRA adapters through peft (base weights frozen) and return the
    PeftModel. The adapters are injected in place, so the original model object runs them too.
    `layers` restricts the adapters to those decoder-layer indices."""
    peft = require("peft", "train", "LoRA fine-tuning")
    if r < 1:
        raise ConfigError(f"LoRA rank must be positive, got {r}")
    kw: dict[str, Any] = {}
    if layers is not None:
        import torch

        stack = decoder_layers(model)
        if isinstance(target_modules, str) and target_modules == "all-linear":
            # peft needs explicit names with layers_to_transform: every Linear of the blocks
            target_modules = sorted({n.split(".")[-1] for n, m in stack.named_modules()
                                     if isinstance(m, torch.nn.Linear)})
        prefix = next(n for n, m in model.named_modules() if m is stack)
        kw = {"layers_to_transform": list(layer_indices(model, layers=layers)),
              "layers_pattern": prefix.split(".")[-1]}
    cfg = peft.LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules), **kw,
    )
    return peft.get_peft_model(model, cfg, adapter_name=adapter_name)


def trainable_state(model: Any) -> dict[str, Any]:
    """A detached copy of every trainable parameter (name -> tensor)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: Any, state: dict[str, Any]) -> None:
    """Copy a `trainable_state` snapshot back in place (names must match exactly)."""
    import torch

    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ConfigError(f"snapshot parameter '{missing[0]}' is not in the model")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


def save_trainable(model: Any, path: str | Path) -> Path:
    """Write the trainable parameters to a safetensors file (atomically). Under torch.distributed
    rank 0 writes and every rank waits until the file is there. Names are the model's own: pass
    the model, not a DDP wrapper (a `module.` prefix is refused)."""
    from safetensors.torch import save_file

    from solstice.core import distributed

    p = Path(path)
    state = trainable_state(model)
    if any(n.startswith("module.") for n in state):
        raise ConfigError("save the model itself, not its DistributedDataParallel wrapper (names start with 'module.')")

    def write() -> None:
        tmp = p.with_name(p.name + ".tmp")
        save_file({n: t.contiguous().cpu() for n, t in state.items()}, str(tmp))
        tmp.replace(p)

    distributed.main_writes(write)
    return p


def save_adapter(model: Any, path: str | Path) -> Path:
    """`model.save_pretrained(path)` (a peft adapter or a transformers model), written by rank 0
    alone under torch.distributed, every rank waiting until it is there."""
    from solstice.core import distributed

    p = Path(path)
    distributed.main_writes(lambda: model.save_pretrained(str(p)))
    return p


def load_trainable(model: Any, path: str | Path) -> None:
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise DataError(f"checkpoint '{p}' does not exist")
    load_trainable_state(model, load_file(str(p)))
