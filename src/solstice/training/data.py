"""Supervised examples for causal-LM fine-tuning: a prompt the model reads and a target it learns
to continue with. The loss covers the target tokens only (and the end-of-sequence token when
asked), which is what instruction tuning and label-word classification training need.

    examples = [SupervisedExample("Review: great film\\nAnswer:", " Good"), ...]
    encoded = encode_supervised(tokenizer, examples, max_length=128)
    batch = collate(encoded[:8], pad_id=tokenizer.pad_token_id)   # input_ids, attention_mask, labels

Tokenisation follows the lm-evaluation-harness convention used by the model layer: the target's
tokens are whatever the tokenised prompt+target adds beyond the tokenised prompt, so training and
rank-classification scoring see the same token boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from solstice.errors import ConfigError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SupervisedExample:
    """`prompt` is the exact text the model reads (render chat prompts first, see `render`);
    `target` is the continuation trained on, usually starting with a space."""

    prompt: str
    target: str
    meta: dict[str, Any] = field(default_factory=dict)


def render(tokenizer: Any, prompt: str | Sequence[dict[str, str]], *, chat: bool = False) -> str:
    """The text the model reads: a string as is, or chat messages through the tokenizer's chat
    template with the assistant turn opened. `chat=True` wraps a plain string as one user turn."""
    if isinstance(prompt, str) and not chat:
        return prompt
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the tokenizer has no chat template; pass plain-text prompts (chat=False)")
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_ids(tokenizer: Any, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """(prompt ids, target ids) with the target being what prompt+target adds to the prompt."""
    whole = encode(tokenizer, prompt + target)
    ctx = encode(tokenizer, prompt)
    k = min(len(ctx), len(whole))
    while k > 0 and whole[:k] != ctx[:k]:
        k -= 1
    ctx_ids, tgt_ids = whole[:k], whole[k:]
    if not ctx_ids:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ctx_ids = [bos]
    return ctx_ids, tgt_ids


def encode_supervised(
    tokenizer: Any,
    examples: Sequence[SupervisedExample],
    *,
    max_length: int = 512,
    add_eos: bool = True,
) -> list[dict[str, list[int]]]:
    """input_ids and labels (IGNORE_INDEX on prompt tokens) per example. A prompt that does not fit
    loses its leftmost tokens; a target that alone exceeds `max_length` is an error."""
    out = []
    eos = tokenizer.eos_token_id
    for i, ex in enumerate(examples):
        ctx, tgt = split_ids(tokenizer, ex.prompt, ex.target)
        if add_eos and eos is not None:
            tgt = tgt + [eos]
        if not tgt:
            raise ConfigError(f"example {i} has an empty target")
        if len(tgt) >= max_length:
            raise ConfigError(f"example {i}: the target alone has {len(tgt)} tokens (max_length {max_length})")
        ctx = ctx[-(max_length - len(tgt)) :]
        out.append({"input_ids": ctx + tgt, "labels": [IGNORE_INDEX] * len(ctx) + tgt})
    return out


def collate(rows: Sequence[dict[str, list[int]]], pad_id: int, *, side: str = "right") -> dict[str, Any]:
    """Padded tensors: input_ids, attention_mask, labels (padding labelled IGNORE_INDEX) and
    position_ids (counting real tokens only, so left padding does not shift positions)."""
    import torch

    if side not in ("left", "right"):
        raise ConfigError(f"padding side must be 'left' or 'right', got '{side}'")
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        sl = slice(width - n, width) if side == "left" else slice(0, n)
        ids[i, sl] = torch.tensor(r["input_ids"])
        mask[i, sl] = 1
        labels[i, sl] = torch.tensor(r["labels"])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": pos}


def step_batches(n: int, batch_size: int, *, epochs: float = 1.0, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False) -> Iterator[list[int]]:
    """Example indices per optimizer step: each epoch a fresh seeded permutation; a fractional
    epoch count stops after that share of the last epoch's batches."""
    import numpy as np

    if n < 1 or batch_size < 1:
        raise ConfigError(f"need at least one example and a positive batch size (got {n}, {batch_size})")
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    if per_epoch == 0:
        raise ConfigError(f"{n} examples make no full batch of {batch_size} (drop_last)")
    total = max(1, round(epochs * per_epoch))
    done = 0
    while done < total:
        order = rng.permutation(n) if shuffle else np.arange(n)
        for b in range(per_epoch):
            if done >= total:
                return
            yield [int(i) for i in order[b * batch_size : (b + 1) * batch_size]]
            done += 1


def n_steps(n: int, batch_size: int, *, epochs: float = 1.0, drop_last: bool = False) -> int:
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    return max(1, round(epochs * per_epoch)) if per_epoch else 0
