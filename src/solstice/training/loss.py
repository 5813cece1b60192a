"""Next-token loss computed together with the output head, only at positions that have a target.

A causal LM's loss needs the logits of every vocabulary word at every target position, and the
[tokens, vocabulary] logits matrix with its gradient is the largest tensor of a small model's step
(SmolLM2-135M: 49,152 words; its tied output head is 28 M of the 135 M parameters). The usual path
(`model(input_ids, labels=...)`) computes logits at every position, keeps them (and their
log-softmax) for backward, and zero-fills and copies [tokens, vocabulary] tensors on the way back.

`linear_cross_entropy(hidden, weight, bias, targets)` computes the summed cross-entropy of
`hidden @ weight.T + bias` in row chunks and, when gradients are needed, the gradients of `hidden`,
`weight` and `bias` in the same pass (softmax minus one-hot, times the weight), so no logits are
kept for backward. Same FLOPs, less memory traffic; values equal
`cross_entropy(hidden @ weight.T + bias, targets, reduction="sum")` up to float rounding (tested).
Liger-Kernel's FusedLinearCrossEntropy and cut-cross-entropy do this with Triton kernels on GPUs;
this is the plain-torch version, which also runs on CPUs.

`OutputHead(model)` applies it to a transformers causal LM (peft-wrapped or not): it runs the
model's own forward with no logits kept (`logits_to_keep` = no position), takes the decoder's last
hidden state, selects the positions whose next token is a target (labels != -100) and computes the
loss there with the model's output embedding. `check()` compares the model's logits with the
head applied to the hidden state, so a model that transforms its logits further (soft-capping,
scaling) is refused instead of silently trained on another loss. The training loop uses it with
`TrainConfig(fused_loss=True)`.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

from solstice.errors import ConfigError

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 25  # logits per chunk (128 MB in float32)
_PASSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> max |Δlogit| of its check


def _fn() -> Any:
    import torch

    class LinearCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, bias: Any, targets: Any, rows: int, grads: tuple) -> Any:
            need_h, need_w, need_b = grads
            acc = torch.promote_types(hidden.dtype, torch.float32)  # the loss at least in float32
            total = torch.zeros((), dtype=acc, device=hidden.device)
            gh = torch.empty_like(hidden) if need_h else None
            gw = torch.zeros_like(weight, dtype=acc) if need_w else None
            gb = torch.zeros_like(bias, dtype=acc) if need_b else None
            for s in range(0, hidden.shape[0], rows):
                hc, yc = hidden[s : s + rows], targets[s : s + rows]
                logits = hc @ weight.T
                if bias is not None:
                    logits += bias
                logits = logits.to(acc)  # float32 for half-precision models, as the model path upcasts
                # log-sum-exp with one exp pass, in place: shift by the row max, exponentiate, sum
                z = logits.sub_(logits.amax(-1, keepdim=True))
                picked = z.gather(1, yc[:, None])
                p = z.exp_()
                norm = p.sum(-1, keepdim=True)
                total += (norm.log() - picked).sum()
                if need_h or need_w or need_b:
                    p.div_(norm)  # softmax
                    p[torch.arange(len(yc), device=p.device), yc] -= 1.0  # d(sum of losses)/d(logits)
                    if need_b:
                        gb += p.sum(0)
                    p = p.to(weight.dtype)
                    if need_h:
                        gh[s : s + rows] = p @ weight
                    if need_w:
                        gw.addmm_(p.T.to(acc), hc.to(acc))
            ctx.grads = (gh, gw, gb)
            ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
            return total

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            gh, gw, gb = ctx.grads
            ctx.grads = None
            out = [None if t is None else (t * g).to(dt) for t, dt in zip((gh, gw, gb), ctx.dtypes)]
            return (*out, None, None, None)

    return LinearCrossEntropy


_FN: Any = None


def linear_cross_entropy(hidden: Any, weight: Any, bias: Any, targets: Any, *,
                         chunk_elements: int = CHUNK_ELEMENTS) -> Any:
    """Σ_i cross_entropy(hidden[i] @ weight.T + bias, targets[i]) as a scalar (float32 or wider), with
    gradients for whichever of hidden / weight / bias require them. `hidden` is [N, d], `weight`
    [V, d], `bias` [V] or None, `targets` [N] word ids (no ignored entries: select the target
    rows first)."""
    import torch

    global _FN
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ConfigError(f"hidden must be [N, d] with N targets, got {tuple(hidden.shape)} and {tuple(targets.shape)}")
    if targets.numel() and not 0 <= int(targets.min()) <= int(targets.max()) < weight.shape[0]:
        raise ConfigError(f"targets must be word ids in [0, {weight.shape[0]}); select the target rows first")
    if _FN is None:
        _FN = _fn()
    on = torch.is_grad_enabled()
    grads = (on and hidden.requires_grad, on and weight.requires_grad, on and bias is not None and bias.requires_grad)
    rows = max(1, chunk_elements // weight.shape[0])
    return _FN.apply(hidden, weight, bias, targets, rows, grads)


class OutputHead:
    """The loss of a transformers causal LM at its target positions through `linear_cross_entropy`.

        head = OutputHead(model)
        head.check(input_ids)                                # logits == head(last hidden state)
        loss_sum = head.loss(input_ids, attention_mask, labels, position_ids=...)
    """

    def __init__(self, model: Any) -> None:
        import torch

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        get_decoder = getattr(base, "get_decoder", None)
        decoder = get_decoder() if callable(get_decoder) else None
        head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        if decoder is None or decoder is base or not isinstance(head, torch.nn.Linear):
            raise ConfigError(f"{type(base).__name__} has no decoder with a linear output head; "
                              "the fused loss needs one (set fused_loss=False)")
        params = inspect.signature(base.forward).parameters
        if "logits_to_keep" not in params:
            raise ConfigError(f"{type(base).__name__}.forward takes no logits_to_keep; "
                              "the fused loss needs it (set fused_loss=False)")
        self.model, self.decoder, self.head = model, decoder, head
        self.takes_positions = "position_ids" in params

    def hidden(self, input_ids: Any, attention_mask: Any = None, **kw: Any) -> Any:
        """The decoder's last hidden state [B, T, d] from the model's own forward, no logits computed."""
        import torch

        got: dict[str, Any] = {}

        def grab(module: Any, args: Any, output: Any) -> None:
            got["h"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

        none = torch.zeros(0, dtype=torch.long, device=input_ids.device)
        handle = self.decoder.register_forward_hook(grab)
        try:
            self.model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=none, **kw)
        finally:
            handle.remove()
        if "h" not in got:
            raise ConfigError("the model's forward never ran its decoder")
        return got["h"]

    def loss(self, input_ids: Any, attention_mask: Any, labels: Any, **kw: Any) -> Any:
        """Summed next-token cross-entropy over the target tokens (labels[:, 1:] != -100)."""
        h = self.hidden(input_ids, attention_mask, **kw)
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        return linear_cross_entropy(h[:, :-1][keep], self.head.weight, self.head.bias, target[keep])

    def check(self, input_ids: Any, atol: float = 1e-4) -> float:
        """Largest |logit| difference between the model's forward and the head applied to the
        decoder's hidden state on `input_ids` [B, T]; raises ConfigError above `atol`. A passed
        check is remembered for this model object (it is about the model's structure), so a loop
        that trains one model many times checks it once."""
        import torch

        if self.model in _PASSED:
            return _PASSED[self.model]
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                ref = self.model(input_ids=input_ids).logits
                mine = self.head(self.hidden(input_ids))
        finally:
            self.model.train(was)
        diff = float((ref.float() - mine.float()).abs().max())
        if not diff <= atol:
            raise ConfigError(f"the model's logits differ from its output head on the last hidden state by "
                              f"{diff:.2g}; it cannot use the fused loss (set fused_loss=False)")
        _PASSED[self.model] = diff
        return diff
