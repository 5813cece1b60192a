"""Frozen-prefix activation cache for partial fine-tuning.

When only the top decoder layers train (and the embeddings and lower layers are frozen and have
no dropout), the input of the first trained layer is a fixed function of the tokens. Computing it
once per sequence and feeding it straight into the trained layers skips most of the forward pass
in every later epoch, task, method and evaluation that sees the same tokens.

    prefix = FrozenPrefix(model, start=26)             # layers 0..25 frozen
    states = prefix.states([ids1, ids2])               # cached input of layer 26 per sequence
    with prefix.skipping(padded_states):               # layers 0..25 become pass-throughs
        out = model(input_ids=..., attention_mask=..., position_ids=...)

While skipping, the lower layers are replaced by pass-through modules (indices, layer types and
the model's own forward are unchanged) and the first trained layer receives the cached states.
`verify()` checks on real sequences that the result equals the full forward pass; the training
loop (`train(..., prefix=...)`) and `rank_classify(..., prefix=...)` use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from solstice.errors import ConfigError
from solstice.training.params import decoder_layers


class _Stop(Exception):
    pass


def _skip_module(tuple_out: bool) -> Any:
    import torch

    class PassThrough(torch.nn.Module):
        def forward(self, hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
            return (hidden_states,) if tuple_out else hidden_states

    return PassThrough()


class FrozenPrefix:
    def __init__(self, model: Any, start: int, *, batch_size: int = 16) -> None:
        self.model = model
        self.stack = decoder_layers(model)
        if not 0 < start < len(self.stack):
            raise ConfigError(f"a frozen prefix needs 0 < start < {len(self.stack)} layers, got {start}")
        trained_layers = {id(p) for layer in self.stack[start:] for p in layer.parameters()}
        upstream = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in trained_layers]
        if upstream:
            raise ConfigError(f"a frozen prefix needs everything below layer {start} frozen; '{upstream[0]}' trains")
        self.start = start
        self.batch_size = batch_size
        self._cache: dict[tuple[int, ...], Any] = {}
        self._tuple_out: bool | None = None
        self._inject: Any = None
        self.device = next(model.parameters()).device

    # -- computing the cached states ---------------------------------------------------------
    def states(self, seqs: Sequence[Sequence[int]]) -> list[Any]:
        """The input of layer `start` for each token sequence ([len, d] tensors, memoised)."""
        keys = [tuple(s) for s in seqs]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        for b in range(0, len(todo), self.batch_size):
            chunk = todo[b : b + self.batch_size]
            for k, h in zip(chunk, self._capture([list(c) for c in chunk])):
                self._cache[k] = h
        return [self._cache[k] for k in keys]

    def _capture(self, seqs: list[list[int]]) -> list[Any]:
        import torch

        ids, mask, pos = _left_pad(seqs, self.device)
        got: dict[str, Any] = {}

        def grab(module: Any, args: tuple, kwargs: dict) -> None:
            got["h"] = args[0] if args else kwargs["hidden_states"]
            raise _Stop

        def kind(module: Any, args: Any, output: Any) -> None:
            self._tuple_out = isinstance(output, tuple)

        h1 = self.stack[self.start].register_forward_pre_hook(grab, with_kwargs=True)
        h2 = self.stack[self.start - 1].register_forward_hook(kind)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        except _Stop:
            pass
        finally:
            h1.remove()
            h2.remove()
            self.model.train(was)
        if "h" not in got:
            raise ConfigError("the model's forward never reached the first trained layer")
        width = ids.shape[1]
        return [got["h"][r, width - len(s) :].detach().clone() for r, s in enumerate(seqs)]

    def padded(self, states: Sequence[Any], width: int, side: str = "left") -> Any:
        """Stack [len, d] states into [B, width, d] with zeros at the padding."""
        import torch

        d = states[0].shape[-1]
        out = torch.zeros((len(states), width, d), dtype=states[0].dtype, device=self.device)
        for r, h in enumerate(states):
            n = h.shape[0]
            if side == "left":
                out[r, width - n :] = h
            else:
                out[r, :n] = h
        return out

    # -- running the trained layers only --------------------------------------------------------
    @contextlib.contextmanager
    def skipping(self, hidden: Any):
        """Inside the block, forwards skip the frozen layers and start from `hidden` ([B, T, d])."""
        if self._tuple_out is None:
            raise ConfigError("compute some states() before skipping")
        originals = [self.stack[i] for i in range(self.start)]

        def inject(module: Any, args: tuple, kwargs: dict) -> Any:
            cur = args[0] if args else kwargs["hidden_states"]
            if tuple(cur.shape) != tuple(hidden.shape):
                raise ConfigError(f"cached states {tuple(hidden.shape)} do not fit the batch {tuple(cur.shape)}")
            h = hidden.to(cur.dtype)
            if args:
                return (h, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": h}

        handle = self.stack[self.start].register_forward_pre_hook(inject, with_kwargs=True)
        try:
            for i in range(self.start):
                self.stack[i] = _skip_module(bool(self._tuple_out))
            yield
        finally:
            for i, m in enumerate(originals):
                self.stack[i] = m
            handle.remove()

    def verify(self, seqs: Sequence[Sequence[int]], atol: float = 1e-3) -> float:
        """Largest |logit| difference between the full forward and the cached path on `seqs`;
        raises ConfigError above `atol` (the model's layers do not allow skipping)."""
        import torch

        seqs = [list(s) for s in seqs]
        ids, mask, pos = _left_pad(seqs, self.device)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                full = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
                with self.skipping(self.padded(self.states(seqs), ids.shape[1])):
                    fast = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
        finally:
            self.model.train(was)
        real = mask.bool()
        diff = float((full - fast).abs()[real].max())
        if not diff <= atol:
            raise ConfigError(f"skipping the frozen layers changes the logits by {diff:.2g}; "
                              "this model cannot use the frozen-prefix cache")
        return diff


def _left_pad(seqs: Sequence[Sequence[int]], device: Any) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, width - len(s) :] = torch.tensor(list(s))
        mask[r, width - len(s) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)
