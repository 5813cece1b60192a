"""transformers Trainer integration for step hooks.

The Trainer clips gradients *before* `on_pre_optimizer_step`, so a hook that masks or edits
gradients there would see already-clipped gradients, and the clipping norm would include rows that
are then zeroed. `attach_hooks(trainer, hook)` fixes the order: it takes over clipping (sets
`max_grad_norm` to 0 for the run and clips after the hooks, through the Trainer's accelerator, so
mixed-precision unscaling and distributed norms stay right) and restores the setting afterwards.

    trainer = Trainer(model=model, args=args, train_dataset=ds)
    attach_hooks(trainer, my_hook)        # one line
    trainer.train()
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from solstice.errors import require
from solstice.training.loop import StepHook

log = logging.getLogger(__name__)


def step_hook_callback(hooks: Sequence[StepHook], accelerator: Any = None) -> Any:
    """A TrainerCallback running `hooks` in the order of `solstice.training.loop.train`."""
    tf = require("transformers", "hf", "the Trainer integration")

    class StepHookCallback(tf.TrainerCallback):
        def __init__(self) -> None:
            self.hooks = list(hooks)
            self.accelerator = accelerator
            self.clip: float = 0.0

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
            self.clip = float(args.max_grad_norm or 0.0)
            if self.clip > 0:
                log.info("step hooks take over gradient clipping (max_grad_norm=%g) to clip after them", self.clip)
                args.max_grad_norm = 0.0
            for h in self.hooks:
                h.on_train_begin(model, optimizer)

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            import torch

            for h in self.hooks:
                h.before_clip(model)
            if self.clip > 0:
                params = [p for p in model.parameters() if p.requires_grad]
                if self.accelerator is not None:
                    self.accelerator.clip_grad_norm_(params, self.clip)
                else:
                    torch.nn.utils.clip_grad_norm_(params, self.clip)

        def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kw):
            for h in self.hooks:
                h.after_step(model, optimizer)

        def on_train_end(self, args, state, control, model=None, **kw):
            if self.clip > 0:
                args.max_grad_norm = self.clip
            for h in reversed(self.hooks):
                h.on_train_end(model)

    return StepHookCallback()


def attach_hooks(trainer: Any, *hooks: StepHook) -> Any:
    """Add a StepHookCallback for `hooks` to `trainer` and return the callback."""
    cb = step_hook_callback(hooks, getattr(trainer, "accelerator", None))
    trainer.add_callback(cb)
    return cb
