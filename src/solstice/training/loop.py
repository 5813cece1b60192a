"""A plain, explicit fine-tuning loop with step hooks.

One optimizer step is: every micro-batch forward + backward (gradients summed, the loss normalised
by the number of target tokens of the whole step, so micro-batching does not change the gradient)
-> `hook.before_clip` -> gradient clipping -> `optimizer.step()` -> `hook.after_step` -> zero grads.
Hooks that edit gradients (gradient masks, projections) therefore act before clipping, which the
transformers Trainer does not offer (its `on_pre_optimizer_step` runs after clipping; see
`solstice.training.hf.StepHookCallback` for the Trainer route).

    from solstice.training import TrainConfig, train, SupervisedExample
    result = train(model, tokenizer, examples, TrainConfig(lr=2e-5, batch_size=8), hooks=[my_hook])

`model` is any transformers causal LM (peft-wrapped or not); only parameters with
`requires_grad` are optimised. The model is left in eval mode afterwards.

Under torchrun / accelerate launch (torch.distributed started, see solstice.core.distributed) the
loop wraps the model in DistributedDataParallel for the run and gives each rank its share of every
step's batch (`solstice.training.ddp`): the same steps as one process with the whole batch.
`micro_batch_size` then counts per rank; `batch_size` must be a multiple of the world size.
Hooks receive the unwrapped model; losses and token counts in the result are global.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from solstice.errors import CapabilityError, ConfigError
from solstice.training.data import (
    SupervisedExample,
    collate,
    encode_supervised,
    n_steps,
    step_batches,
)

log = logging.getLogger(__name__)


class StepHook:
    """Something that acts inside the optimizer step. Every method is optional; `model` is the model
    being trained and `optimizer` its (possibly wrapped) optimizer."""

    def on_train_begin(self, model: Any, optimizer: Any) -> None:  # noqa: B027
        pass

    def on_micro_batch(self, model: Any, batch: dict[str, Any]) -> None:  # noqa: B027
        """Called before each micro-batch's forward pass."""

    def before_clip(self, model: Any) -> None:  # noqa: B027
        """All micro-batches of the step have run backward; gradients are complete, not clipped."""

    def after_step(self, model: Any, optimizer: Any) -> None:  # noqa: B027
        """`optimizer.step()` has run; gradients are still present."""

    def on_train_end(self, model: Any) -> None:  # noqa: B027
        pass


@dataclass
class TrainConfig:
    """Optimisation settings of one training run (one task, in continual learning)."""

    lr: float = 2e-5
    batch_size: int = 8  # examples per optimizer step
    micro_batch_size: int | None = None  # split each step for gradient accumulation
    epochs: float = 1.0
    max_steps: int | None = None
    optimizer: str = "adamw"  # adamw | sgd
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0  # sgd only
    max_grad_norm: float | None = 1.0  # None or 0: no clipping
    schedule: str = "constant"  # any transformers.get_scheduler name
    warmup_steps: int = 0
    seed: int = 0
    max_length: int = 512
    add_eos: bool = True
    log_every: int = 10
    # output head and loss in one chunked pass at the target positions only (training/loss.py);
    # checked once per run against the model's own logits (ConfigError if they differ)
    fused_loss: bool = False
    # MoE load-balancing loss (Switch / Mixtral form, as transformers computes it for Mixtral, Qwen-MoE,
    # OLMoE with output_router_logits=True) added with this weight; 0 trains on the cross-entropy alone.
    # Each micro-batch adds coef x its aux loss x its share of the step's rows, so gradient accumulation
    # and several processes give the same step as one batch would (up to the per-batch routing statistics).
    router_aux_loss_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.epochs <= 0:
            raise ConfigError("lr, batch_size and epochs must be positive")
        if self.router_aux_loss_coef < 0:
            raise ConfigError("router_aux_loss_coef must be >= 0")
        if self.router_aux_loss_coef and self.fused_loss:
            raise ConfigError("fused_loss computes the cross-entropy only; it cannot add a router aux loss "
                              "(set fused_loss=False or router_aux_loss_coef=0)")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ConfigError("micro_batch_size must be positive")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"unknown optimizer '{self.optimizer}'; use adamw or sgd")


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)  # mean target-token loss per step
    grad_norms: list[float] = field(default_factory=list)  # pre-clip norm (after hooks)
    aux_losses: list[float] = field(default_factory=list)  # router load-balancing loss per step (unweighted)
    target_tokens: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        k = max(1, len(self.losses) // 5)
        return {
            "steps": self.steps, "tokens": self.tokens, "target_tokens": self.target_tokens,
            "seconds": round(self.seconds, 2),
            "loss_first": float(sum(self.losses[:k]) / k) if self.losses else math.nan,
            "loss_last": float(sum(self.losses[-k:]) / k) if self.losses else math.nan,
            **({"aux_loss_first": float(sum(self.aux_losses[:k]) / k),
                "aux_loss_last": float(sum(self.aux_losses[-k:]) / k)} if self.aux_losses else {}),
        }


def build_optimizer(params: Sequence[Any], cfg: TrainConfig) -> Any:
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # torch's fused AdamW (one kernel over all tensors; CPU and CUDA since torch 2.4) is the same update
    # up to float rounding and ~5x faster than the default multi-tensor path on CPU, which matters when
    # hundreds of millions of parameters train (an upcycled MoE); other devices / dtypes keep the default
    params = list(params)
    devs = {p.device.type for p in params}
    fused = len(devs) == 1 and devs <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             **({"fused": True} if fused else {}))


def trainable(model: Any) -> list[Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters (every requires_grad is False)")
    return params


def train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[SupervisedExample] | Sequence[dict[str, list[int]]],
    cfg: TrainConfig | None = None,
    *,
    hooks: Sequence[StepHook] = (),
    optimizer: Any = None,
    on_step: Callable[[int, float], None] | None = None,
    prefix: Any = None,
) -> TrainResult:
    """Fine-tune `model` on `examples` (SupervisedExample, or rows from `encode_supervised`).
    With `prefix` (a `solstice.training.prefix.FrozenPrefix`) the frozen lower layers run once
    per distinct sequence and are skipped afterwards."""
    import contextlib

    import torch

    cfg = cfg or TrainConfig()
    if not examples:
        raise ConfigError("no training examples")
    rows = (
        encode_supervised(tokenizer, examples, max_length=cfg.max_length, add_eos=cfg.add_eos)  # type: ignore[arg-type]
        if isinstance(examples[0], SupervisedExample) else list(examples)
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    from solstice.training import ddp

    multi = ddp.active()
    world = ddp.distributed.world_size()
    params = trainable(model)
    opt = optimizer or build_optimizer(params, cfg)
    total = n_steps(len(rows), cfg.batch_size, epochs=cfg.epochs)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    if multi:
        ddp.check_split(len(rows), cfg.batch_size, steps=total)
    from transformers import get_scheduler

    sched = get_scheduler(cfg.schedule, opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=total)
    device = next(model.parameters()).device
    micro = cfg.micro_batch_size or cfg.batch_size
    fkw = forward_kwargs(model)
    side = "left" if "position_ids" in fkw else "right"
    head = None
    if cfg.fused_loss and multi:
        # the fused head runs the model's body directly, and DDP synchronises gradients only through its own
        # forward: several processes use the model's loss (equal within float rounding, only slower)
        log.info("fused_loss is not used under %d processes (DDP needs its own forward)", world)
    elif cfg.fused_loss:
        from solstice.training.loss import OutputHead

        head = OutputHead(model)
        head.check(torch.tensor([rows[0]["input_ids"][:8]], device=device))
    res = TrainResult(steps=0)
    torch.manual_seed(cfg.seed)
    net = ddp.wrap(model) if multi else model  # forward/backward through DDP, hooks see `model`
    net.train()
    t0 = time.perf_counter()
    begun: list[StepHook] = []
    try:
        for h in hooks:
            h.on_train_begin(model, opt)
            begun.append(h)
        opt.zero_grad(set_to_none=True)
        for step, idx in enumerate(step_batches(len(rows), cfg.batch_size, epochs=cfg.epochs, seed=cfg.seed)):
            if step >= total:
                break
            step_rows = [rows[i] for i in idx]
            n_target = sum(sum(1 for x in r["labels"][1:] if x >= 0) for r in step_rows)  # whole step
            mine = ddp.share(step_rows, f"optimizer step {step + 1}") if multi else step_rows
            loss_sum = 0.0
            aux_sum = 0.0
            tokens = 0
            starts = range(0, len(mine), micro)
            for k in starts:
                mb = mine[k : k + micro]
                batch = {n: t.to(device) for n, t in collate(mb, pad, side=side).items()}
                for h in hooks:
                    h.on_micro_batch(model, batch)
                skip = contextlib.nullcontext()
                if prefix is not None:
                    states = prefix.states([r["input_ids"] for r in mb])
                    skip = prefix.skipping(prefix.padded(states, batch["input_ids"].shape[1], side))
                # DDP averages gradients over ranks once per step (at the last micro-batch)
                sync = net.no_sync() if multi and k != starts[-1] else contextlib.nullcontext()
                with sync:
                    with skip:
                        if head is not None:
                            pos = {"position_ids": batch["position_ids"]} if "position_ids" in fkw else {}
                            loss = head.loss(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                             **pos) / max(1, n_target)
                        elif cfg.router_aux_loss_coef:
                            loss, aux = _target_loss(net, batch, max(1, n_target), fkw, router_aux=True)
                            share = len(mb) / len(step_rows)
                            aux_sum += float(aux.detach()) * share
                            loss = loss + cfg.router_aux_loss_coef * share * aux
                        else:
                            loss = _target_loss(net, batch, max(1, n_target), fkw)
                    (loss * world if multi else loss).backward()
                loss_sum += float(loss.detach())
                tokens += int(batch["attention_mask"].sum())
            if multi:
                loss_sum, tok_sum, aux_sum = ddp.distributed.all_sum([loss_sum, float(tokens), aux_sum])
                tokens = int(tok_sum)
            res.tokens += tokens
            for h in hooks:
                h.before_clip(model)
            if cfg.max_grad_norm:
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            else:
                norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            opt.step()
            sched.step()
            for h in hooks:
                h.after_step(model, opt)
            opt.zero_grad(set_to_none=True)
            res.steps += 1
            res.losses.append(loss_sum)
            res.grad_norms.append(float(norm))
            if cfg.router_aux_loss_coef:
                res.aux_losses.append(aux_sum)
            res.target_tokens += n_target
            if on_step is not None:
                on_step(step, loss_sum)
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                log.info("step %d/%d loss %.4f", step + 1, total, loss_sum)
    finally:
        for h in reversed(begun):
            h.on_train_end(model)
        model.eval()
        if net is not model:  # release DDP's gradient hooks before the model is used again
            del net
            import gc

            gc.collect()
    res.seconds = time.perf_counter() - t0
    return res


def forward_kwargs(model: Any) -> set[str]:
    """Which of position_ids / logits_to_keep the (possibly peft-wrapped) model's forward takes."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return {k for k in ("position_ids", "logits_to_keep") if k in params}


def _target_loss(model: Any, batch: dict[str, Any], n_target: int, kwargs: set[str], *,
                 router_aux: bool = False) -> Any:
    """Summed next-token cross-entropy over target tokens, divided by the step's target count.
    With left padding the targets end every row, so only the last positions' logits are computed
    (`logits_to_keep`), which skips most of the vocabulary projection. With `router_aux` the
    model is asked for its router logits and `(loss, aux_loss)` is returned (the MoE's own
    load-balancing loss over this batch's unpadded tokens)."""
    import torch

    labels = batch["labels"]
    kw: dict[str, Any] = {}
    if "position_ids" in kwargs:
        kw["position_ids"] = batch["position_ids"]
    is_target = labels >= 0
    first = int(is_target.float().argmax(-1).min()) if bool(is_target.any()) else labels.shape[1] - 1
    span = labels.shape[1] - max(1, first)  # target positions counted from the end
    if "logits_to_keep" in kwargs:
        kw["logits_to_keep"] = span + 1
    if router_aux:
        kw["output_router_logits"] = True
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kw)
    logits = out.logits[:, -(span + 1) : -1]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels[:, -span:].reshape(-1),
        ignore_index=-100, reduction="sum",
    ) / n_target
    if not router_aux:
        return ce
    aux = getattr(out, "aux_loss", None)
    if aux is None:
        raise CapabilityError("router_aux_loss_coef is set but the model returned no aux_loss (not a transformers "
                              "MoE with output_router_logits)")
    return ce, aux


class HookedOptimizer:
    """An optimizer wrapper for your own loop: `step()` runs the hooks' `before_clip`, clips
    (when `max_grad_norm` is set), steps and runs `after_step`. Everything else is delegated.

        opt = HookedOptimizer(torch.optim.AdamW(params), [hook], max_grad_norm=1.0)
        loss.backward(); opt.step(); opt.zero_grad()

    Do not clip before `step()` yourself: clipping belongs after the hooks."""

    def __init__(self, optimizer: Any, hooks: Sequence[StepHook], *, model: Any = None,
                 max_grad_norm: float | None = None) -> None:
        self.optimizer = optimizer
        self.hooks = list(hooks)
        self.model = model
        self.max_grad_norm = max_grad_norm

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        import torch

        for h in self.hooks:
            h.before_clip(self.model)
        if self.max_grad_norm:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        out = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        for h in self.hooks:
            h.after_step(self.model, self.optimizer)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)
