"""One run over several processes: `torchrun` / `accelerate launch` (data-parallel training).

    torchrun --nproc_per_node 4 -m solstice run migu --scale small --model "hf:<model>?device=cuda"

The launcher starts one process per GPU (or CPU worker) and sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT. `init()` reads them and starts torch.distributed: NCCL on GPUs, Gloo
on CPUs (`backend="auto"`), the process's GPU being `cuda:LOCAL_RANK`. Every rank then runs the
paper's code; the rules that keep one run one run:

- rank 0 owns the run record: it creates the run directory, writes run.json, samples.jsonl,
  stages/, metrics.json and the checkpoints; the other ranks open the same directory read-only
  (the `--out` folder must be on a filesystem every node sees) and receive rank 0's decisions and
  results by broadcast (`RunContext.stage` / `RunContext.map`), so every rank follows one path;
- the training layer (`solstice.training.loop.train`, `train_reranker`) wraps the model in
  DistributedDataParallel and gives each rank its share of every optimizer step's batch;
- paper code that writes its own files guards them with `ctx.is_main`.

Nothing here imports torch unless a launcher set WORLD_SIZE > 1; without a launch every function
answers as for one process (rank 0 of 1).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from solstice.errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nccl", "gloo")


def launch_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) set by torchrun / accelerate, or None for a plain process
    (WORLD_SIZE unset or 1). Malformed values are a ConfigError."""
    ws = os.environ.get("WORLD_SIZE")
    if ws is None:
        return None
    try:
        world = int(ws)
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE / RANK / LOCAL_RANK must be integers (got WORLD_SIZE={ws!r}, "
                          f"RANK={os.environ.get('RANK')!r}, LOCAL_RANK={os.environ.get('LOCAL_RANK')!r})") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"inconsistent launch: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return None if world == 1 else (rank, world, local)


def choose_backend(backend: str, cuda_available: bool) -> str:
    """The process-group backend: `auto` is nccl with CUDA and gloo without; nccl without CUDA is
    a ConfigError."""
    if backend not in BACKENDS:
        raise ConfigError(f"--dist-backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if backend == "auto":
        return "nccl" if cuda_available else "gloo"
    if backend == "nccl" and not cuda_available:
        raise ConfigError("--dist-backend nccl needs CUDA, but torch sees no GPU here; "
                          "use --dist-backend gloo (CPU) or run on GPU nodes")
    return backend


def init(backend: str = "auto") -> bool:
    """Start torch.distributed from the launcher's environment. Returns True when this call
    started it (the caller then calls `shutdown()`), False when there is no launch or it was
    already running (e.g. started by accelerate)."""
    env = launch_env()
    if env is None:
        if backend not in BACKENDS:
            raise ConfigError(f"--dist-backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
        return False
    import torch
    import torch.distributed as dist

    rank, world, local = env
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; it cannot run under a launcher")
    chosen = choose_backend(backend, torch.cuda.is_available())
    if dist.is_initialized():
        return False
    if chosen == "nccl":
        n = torch.cuda.device_count()
        if local >= n:
            raise ConfigError(f"LOCAL_RANK {local} but only {n} GPU(s) visible on this node; "
                              f"start at most {n} processes per node (--nproc_per_node)")
        torch.cuda.set_device(local)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} is set but {', '.join(missing)} is not; start the run with "
                          "torchrun or accelerate launch")
    dist.init_process_group(chosen, rank=rank, world_size=world)
    log.info("torch.distributed: rank %d of %d (local rank %d), backend %s", rank, world, local, chosen)
    return True


def shutdown() -> None:
    if active():
        import torch.distributed as dist

        dist.destroy_process_group()


def active() -> bool:
    """True inside a started process group of more than one rank."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    dist = torch.distributed
    return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def rank() -> int:
    if not active():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    if not active():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (any picklable object); `obj` itself without a launch."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of `values` over the ranks (float64; the values themselves without a launch)."""
    if not active():
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return [float(x) for x in t.cpu()]


def _device() -> Any:
    import torch
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def split(items: list[Any], what: str = "the batch") -> list[Any]:
    """This rank's contiguous share of `items` (sizes differ by at most one, lower ranks larger);
    every rank must get at least one item (ConfigError otherwise). All of `items` without a launch."""
    world = world_size()
    if world == 1:
        return list(items)
    if len(items) < world:
        raise ConfigError(f"{what} has {len(items)} item(s), fewer than the {world} ranks; "
                          f"use a batch of at least {world} or fewer processes")
    r = rank()
    q, extra = divmod(len(items), world)
    start = r * q + min(r, extra)
    return list(items[start : start + q + (1 if r < extra else 0)])


def main_writes(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn` (a function that writes files) on rank 0 only, then let every rank past a barrier
    so the files are there for all; returns rank 0's result on every rank."""
    out = fn(*args, **kwargs) if is_main() else None
    barrier()
    return broadcast(out) if active() else out
