"""Data parallelism for the training layer's own loops (`loop.train`, `reranker.train_reranker`)
under torchrun / accelerate launch: PyTorch's DistributedDataParallel does the gradient averaging;
this module only wraps the model and says how a step's examples are shared.

Sharding keeps the single-process run: every rank draws the same seeded order of examples
(`data.step_batches`), and each optimizer step's global batch is split into contiguous shares,
one per rank (a DistributedSampler that keeps the global batch of one process). The loss of a
share is normalised by the whole step's target-token count and multiplied by the world size, so
DDP's mean of the ranks' gradients is exactly the gradient of the step's global batch: N ranks
with b examples each take the same step as one process with N*b (up to float summation order).
A batch that cannot give every rank an example is a ConfigError.

The transformers Trainer (and TRL's trainers built on it) shards and wraps by itself through
accelerate; `solstice.training.hf.attach_hooks` clips through its accelerator. Nothing here is
used on that route.
"""

from __future__ import annotations

from typing import Any

from solstice.core import distributed
from solstice.errors import ConfigError


def active() -> bool:
    return distributed.active()


def wrap(model: Any, *, find_unused_parameters: bool = True) -> Any:
    """`model` in DistributedDataParallel (parameters broadcast from rank 0), on its device.
    `find_unused_parameters` stays on by default: routed experts (MoE) and skipped frozen layers
    leave parameters out of some steps."""
    import torch

    dev = next(model.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def check_split(n_examples: int, batch_size: int, what: str = "training", *, steps: int | None = None) -> None:
    """ConfigError unless every optimizer step of `batch_size` (and an epoch's last, shorter one,
    when one of the first `steps` steps is such a step) gives every rank at least one example,
    with full steps shared equally."""
    world = distributed.world_size()
    if world == 1:
        return
    if batch_size % world:
        raise ConfigError(f"{what}: a batch of {batch_size} does not split over {world} ranks; "
                          f"use a batch size that is a multiple of {world}")
    last = n_examples % batch_size
    per_epoch = -(-n_examples // batch_size)
    if steps is not None and steps < per_epoch:  # no epoch's shorter last step is reached
        last = 0
    if n_examples < world or 0 < last < world:
        raise ConfigError(f"{what}: {n_examples} examples leave a step of {last or n_examples} for {world} ranks; "
                          f"use a number of examples that gives every rank one per step, or fewer processes")


def share(items: list[Any], what: str = "the step's batch") -> list[Any]:
    """This rank's contiguous share of one step's examples (all of them in one process)."""
    return distributed.split(items, what)
