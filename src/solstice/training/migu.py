"""MIGU: magnitude-based gradient updating (Du et al., 2024, arXiv:2406.17245, §3), as a reusable
training-layer step hook (the paper's continual-learning experiment lives in its paper package).

In every optimizer step, each selected linear layer updates only the weight rows (output units)
whose outputs had the largest L1 magnitude on the step's batch:

1. forward hooks accumulate m[j] += sum_t |Y[t, j]| over every token of every micro-batch of the
   step (padding excluded by default, using the attention mask given to the model);
2. before clipping and the optimizer step, rows with m[j] below the layer's q-quantile get a zero
   gradient (q = 0.7: the top ~30% of rows are updated); under torch.distributed the magnitudes
   are averaged over ranks first so every rank builds the same mask;
3. the accumulators are reset after the step. The first task is not masked.

Use it with the project's loop, the transformers Trainer, or your own loop:

    migu = MIGU(model, threshold=0.7)
    train(model, tok, examples, cfg, hooks=[migu])          # solstice.training.train
    attach_hooks(trainer, migu); trainer.train()            # transformers Trainer (one line)
    opt = HookedOptimizer(torch.optim.AdamW(ps), [migu], max_grad_norm=1.0)   # your own loop:
    with migu: ...; migu.task_start(); loss.backward(); opt.step(); opt.zero_grad()

Each `train()`/`trainer.train()` call starts a task (`task_start`); the first one is unmasked
unless `first_task_unmasked=False`. Masking gradients does not freeze rows under Adam-type
optimizers (momentum and weight decay still move them), as in the reference; `mask_mode="update"`
restores the masked rows after every step instead.

LoRA (peft): lora_A rows are masked by lora_A's own output magnitude; lora_B rows by the full
layer output (base + scaled LoRA, `lora_b="combined"`, default) or by lora_B's own output
(`lora_b="own"`). Frozen base weights are never touched.

Sharded training: MIGU edits `weight.grad` of each module. Under ZeRO-3 / FSDP (flat parameters)
those are None at the optimizer step; such units are counted (`stats()["units_without_grad"]`, a
warning is logged) and left out of `kept_fraction`, and a masked step in which no unit has a
gradient is a ConfigError (MIGU would be a silent no-op). Wrappers with a `.module` (DDP,
DataParallel) are looked through for the tied-head check.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from solstice.errors import ConfigError
from solstice.training.loop import StepHook

log = logging.getLogger(__name__)

MODES = ("magnitude", "random")
MASK_MODES = ("grad", "update")
LORA_B_MODES = ("combined", "own")


def unwrap(model: Any) -> Any:
    """The module inside DDP / DataParallel / similar wrappers (anything exposing `.module`)."""
    seen = 0
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings") and seen < 8:
        model = model.module
        seen += 1
    return model


def kept_rows(n: int, q: float) -> int:
    """Rows kept by the quantile rule for n distinct magnitudes: n - ceil(q (n-1))."""
    return n - math.ceil(round(q * (n - 1), 9))


def magnitude_mask(m: Any, q: float) -> Any:
    """m >= quantile(m, q) (linear interpolation), computed exactly with kthvalue: the same set
    as `m >= torch.quantile(m, q)`, for any length."""
    import torch

    n = m.numel()
    k = n - kept_rows(n, q) + 1  # 1-based rank of the smallest kept value
    tau = torch.kthvalue(m.float(), k).values
    return m >= tau


@dataclass
class Unit:
    """One masked weight: `weight` rows are masked by the magnitudes of `source`'s output."""

    name: str
    weight: Any
    source: Any
    kind: str = "linear"  # linear | lora_A | lora_B
    m: Any = None
    saved: Any = None
    mask: Any = None

    @property
    def rows(self) -> int:
        return int(self.weight.shape[0])


class MIGU(StepHook):
    def __init__(
        self,
        model: Any,
        threshold: float = 0.7,
        *,
        mode: str = "magnitude",
        mask_mode: str = "grad",
        include_padding: bool = False,
        include: str | None = None,
        exclude: str | None = None,
        exclude_tied_head: bool = True,
        lora_b: str = "combined",
        first_task_unmasked: bool = True,
        seed: int = 0,
        distributed: bool | None = None,
    ) -> None:
        import torch

        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"MIGU threshold must lie in [0, 1], got {threshold}")
        for val, allowed, what in ((mode, MODES, "mode"), (mask_mode, MASK_MODES, "mask_mode"),
                                   (lora_b, LORA_B_MODES, "lora_b")):
            if val not in allowed:
                raise ConfigError(f"MIGU {what} must be one of {', '.join(allowed)}, got '{val}'")
        self.model = model
        self.threshold = float(threshold)
        self.mode = mode
        self.mask_mode = mask_mode
        self.include_padding = include_padding
        self.lora_b = lora_b
        self.first_task_unmasked = first_task_unmasked
        self.distributed = distributed
        self.task = -1  # index of the current task; -1 before any task_start()
        self.steps = 0
        self.masked_steps = 0
        self.kept_fraction: list[float] = []
        self.units_without_grad = 0  # unit-steps whose weight had no gradient to mask
        self._gen = torch.Generator().manual_seed(seed)
        self._handles: list[Any] = []
        self._token_mask: Any = None
        self._override_mask: Any = None
        self._in_forward = 0
        self._measuring = False
        self._auto_attached = False
        self.units = self._discover(model, include, exclude, exclude_tied_head)
        if not self.units:
            raise ConfigError("MIGU found no trainable nn.Linear weight to mask (check include/exclude and requires_grad)")

    # -- discovery -------------------------------------------------------------------------
    def _discover(self, model: Any, include: str | None, exclude: str | None, tied: bool) -> list[Unit]:
        import torch

        inc = re.compile(include) if include else None
        exc = re.compile(exclude) if exclude else None
        head = None
        core = unwrap(model)
        if tied and hasattr(core, "get_output_embeddings") and hasattr(core, "get_input_embeddings"):
            out, inp = core.get_output_embeddings(), core.get_input_embeddings()
            if out is not None and inp is not None and getattr(out, "weight", None) is getattr(inp, "weight", 0):
                head = out
        lora_b_parent: dict[int, Any] = {}
        try:
            from peft.tuners.lora import LoraLayer
        except ImportError:  # peft is optional
            LoraLayer = ()  # type: ignore[assignment]  # noqa: N806
        lora_a_ids: set[int] = set()
        for _, mod in model.named_modules():
            if LoraLayer and isinstance(mod, LoraLayer):
                for b in mod.lora_B.values():
                    lora_b_parent[id(b)] = mod
                lora_a_ids |= {id(a) for a in mod.lora_A.values()}
        units = []
        for name, mod in model.named_modules():
            if not isinstance(mod, torch.nn.Linear) or not mod.weight.requires_grad or mod is head:
                continue
            if (inc and not inc.search(name)) or (exc and exc.search(name)):
                continue
            kind, source = "linear", mod
            if id(mod) in lora_a_ids:
                kind = "lora_A"
            elif id(mod) in lora_b_parent:
                kind = "lora_B"
                if self.lora_b == "combined":
                    source = lora_b_parent[id(mod)]
            units.append(Unit(name, mod.weight, source, kind))
        return units

    # -- hooks -------------------------------------------------------------------------------
    def attach(self) -> MIGU:
        """Register the forward hooks (idempotent). Prefer `with migu:` or the integrations."""
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._capture_mask, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._release_mask, always_call=True))
        by_source: dict[int, list[Unit]] = {}
        for u in self.units:
            by_source.setdefault(id(u.source), []).append(u)
        for group in by_source.values():
            self._handles.append(group[0].source.register_forward_hook(self._make_hook(group)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._token_mask = None

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> MIGU:
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def _capture_mask(self, module: Any, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        self._token_mask = mask if mask is not None and getattr(mask, "dim", lambda: 0)() == 2 else None
        self._in_forward += 1

    def _release_mask(self, module: Any, args: Any, output: Any) -> None:
        self._token_mask = None
        self._in_forward = max(0, self._in_forward - 1)

    @contextlib.contextmanager
    def token_mask(self, mask: Any):
        """Use `mask` ([batch, tokens], 1 = real token) for forwards inside the block, for models
        called without an `attention_mask` keyword."""
        prev = self._override_mask
        self._override_mask = mask
        try:
            yield
        finally:
            self._override_mask = prev

    def _accumulating(self, module: Any) -> bool:
        import torch

        # only inside a forward of the root model: a gradient-checkpointing recompute during
        # backward must not count twice
        if not self._in_forward:
            return False
        if self._measuring:
            return True
        return self.mode == "magnitude" and self.masking_active and module.training and torch.is_grad_enabled()

    def _make_hook(self, group: list[Unit]):
        import torch

        def hook(module: Any, args: Any, output: Any) -> None:
            if not self._accumulating(module):
                return
            y = output[0] if isinstance(output, tuple) else output
            with torch.no_grad():
                y = y.detach()
                tm = self._override_mask if self._override_mask is not None else self._token_mask
                if not self.include_padding and tm is not None and y.dim() == 3 and tuple(y.shape[:2]) == tuple(tm.shape):
                    mag = tm.to(y.dtype).reshape(-1) @ y.abs().reshape(-1, y.shape[-1])
                else:
                    mag = y.abs().reshape(-1, y.shape[-1]).sum(0)
                mag = mag.float()
                for u in group:
                    if u.m is None:
                        u.m = torch.zeros(u.rows, dtype=torch.float32, device=mag.device)
                    if mag.shape[0] != u.rows:
                        raise ConfigError(f"MIGU unit {u.name}: output width {mag.shape[0]} != {u.rows} weight rows")
                    u.m += mag
        return hook

    # -- task boundary ----------------------------------------------------------------------
    def task_start(self) -> int:
        """Start the next task (the first one is unmasked unless configured otherwise)."""
        self.task += 1
        self.reset()
        return self.task

    @property
    def masking_active(self) -> bool:
        return self.threshold > 0 and not (self.first_task_unmasked and self.task <= 0)

    # -- the step -----------------------------------------------------------------------------
    def compute_masks(self) -> dict[str, Any]:
        """Row masks (bool, True = updated) of every unit for the current step."""
        import torch

        masks = {}
        if self.mode == "random":
            for u in self.units:
                keep = torch.zeros(u.rows, dtype=torch.bool)
                keep[torch.randperm(u.rows, generator=self._gen)[: kept_rows(u.rows, self.threshold)]] = True
                masks[u.name] = keep.to(u.weight.device)
            return masks
        self._all_reduce()
        for u in self.units:
            if u.m is None:  # the layer did not run in this step
                continue
            masks[u.name] = magnitude_mask(u.m, self.threshold)
        return masks

    def _all_reduce(self) -> None:
        import torch

        dist = torch.distributed
        if self.distributed is False or not (dist.is_available() and dist.is_initialized()):
            return
        ws = dist.get_world_size()
        if ws < 2:
            return
        live = [u for u in self.units if u.m is not None]
        if len(live) != len(self.units):
            raise ConfigError("MIGU under torch.distributed needs every masked layer to run in every step")
        flat = torch.cat([u.m for u in live])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= ws
        for u, part in zip(live, flat.split([x.rows for x in live])):
            u.m = part

    def apply_masks(self, masks: dict[str, Any]) -> None:
        """Zero the gradient rows of masked-out units (and remember them for mask_mode='update')."""
        import torch

        kept = total = 0
        missing = []
        with torch.no_grad():
            for u in self.units:
                keep = masks.get(u.name)
                u.mask = keep
                if keep is None:
                    continue
                drop = ~keep
                if self.mask_mode == "update":
                    u.saved = (drop, u.weight.detach()[drop].clone())
                elif u.weight.grad is None:
                    missing.append(u.name)
                    continue
                else:
                    u.weight.grad[drop] = 0
                kept += int(keep.sum())
                total += u.rows
        if missing:
            self.units_without_grad += len(missing)
            if not total:
                raise ConfigError(
                    f"MIGU: none of the {len(missing)} masked weights has a gradient at the optimizer step "
                    "(ZeRO-3 / FSDP keep gradients outside the modules), so masking would do nothing; "
                    "use DDP or ZeRO <= 2, or mask_mode='update'")
            log.warning("MIGU: %d masked weights had no gradient this step (e.g. %s); they are not masked "
                        "and not counted in kept_fraction", len(missing), missing[0])
        if total:
            self.kept_fraction.append(kept / total)
            self.masked_steps += 1

    def before_clip(self, model: Any = None) -> None:
        if self.masking_active:
            self.apply_masks(self.compute_masks())

    def after_step(self, model: Any = None, optimizer: Any = None) -> None:
        import torch

        if self.mask_mode == "update":
            with torch.no_grad():
                for u in self.units:
                    if u.saved is not None:
                        drop, rows = u.saved
                        u.weight.data[drop] = rows
                        u.saved = None
        self.steps += 1
        self.reset()

    def reset(self) -> None:
        """Zero the magnitude accumulators (done after every step)."""
        for u in self.units:
            if u.m is not None:
                u.m.zero_()
            u.saved = None

    def on_train_begin(self, model: Any, optimizer: Any) -> None:
        if not self.attached:
            self.attach()
            self._auto_attached = True
        self.task_start()

    def on_train_end(self, model: Any) -> None:
        self.reset()
        if self._auto_attached:
            self.detach()
            self._auto_attached = False

    # -- diagnostics --------------------------------------------------------------------------
    @contextlib.contextmanager
    def measuring(self):
        """Accumulate magnitudes for every forward inside the block (eval mode and no_grad too),
        e.g. to compare tasks' magnitude distributions; accumulators are reset on entry."""
        was_attached = self.attached
        self.attach()
        self.reset()
        self._measuring = True
        try:
            yield self
        finally:
            self._measuring = False
            if not was_attached:
                self.detach()

    def magnitudes(self, normalized: bool = True) -> dict[str, Any]:
        """Accumulated magnitudes per unit; L1-normalised (the paper's N) by default."""
        out = {}
        for u in self.units:
            if u.m is not None:
                m = u.m.detach().clone()
                out[u.name] = m / m.sum().clamp_min(1e-30) if normalized else m
        return out

    def stats(self) -> dict[str, Any]:
        kf = self.kept_fraction
        return {"task": self.task, "steps": self.steps, "masked_steps": self.masked_steps,
                "units": len(self.units), "kept_fraction": sum(kf) / len(kf) if kf else None,
                "units_without_grad": self.units_without_grad}
