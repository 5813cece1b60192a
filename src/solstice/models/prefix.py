"""Label log-probabilities in one forward pass per prompt, reusing a shared prompt prefix.

`fast_label_logprobs(model, prompts, labels)` returns the same values as `model.label_logprobs`
(the summed log-probability of each label continuing each prompt) but, for white-box (hf) models:

- labels that share leading tokens and differ only in their last token ("Choice 1" / "Choice 2")
  cost ONE forward pass, not one per label: the shared label tokens are read as part of the input
  and their log-probabilities summed from the same pass;
- the longest token prefix common to all prompts of a call (a fixed instruction, a system prompt)
  is encoded once and its key/value cache reused for every prompt of the call.

Any other model (API, scripted) or label set that does not fit this shape goes to
`model.label_logprobs` unchanged, so callers can use this function for every backend.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from solstice.models.base import CAP_WHITEBOX, Model, Prompt

log = logging.getLogger(__name__)

MIN_SHARED = 16  # below this many common prompt tokens the cache is not worth building


def _split(model: Any, text: str, label: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) with the lm-eval convention of HFModel."""
    whole = model.encode(text + label)
    ctx = model.encode(text)
    k = len(ctx)
    while k > 0 and whole[:k] != ctx[:k]:
        k -= 1
    return whole[:k], whole[k:]


def _plan(model: Any, text: str, labels: Sequence[str]) -> tuple[list[int], int, list[int]] | None:
    """Input tokens (context + shared label tokens), the number of shared label tokens, and each
    label's final token; None when the labels do not share all but their last token."""
    splits = [_split(model, text, lab) for lab in labels]
    ctx = splits[0][0]
    conts = [c for _, c in splits]
    if any(s[0] != ctx for s in splits) or any(not c for c in conts):
        return None
    n = len(conts[0])
    if any(len(c) != n for c in conts) or any(c[:-1] != conts[0][:-1] for c in conts):
        return None
    if not ctx:
        return None
    return ctx + conts[0][:-1], n - 1, [c[-1] for c in conts]


def fast_label_logprobs(
    model: Model, prompts: Sequence[Prompt], labels: Sequence[str], *, share_prefix: bool = True
) -> list[dict[str, float]]:
    """Per prompt, {label: log P(label | prompt)}; see the module docstring."""
    if not prompts:
        return []
    if CAP_WHITEBOX not in model.capabilities or not hasattr(model, "tokenizer") or len(labels) < 1:
        return model.label_logprobs(prompts, labels)
    texts = [model.render(p) for p in prompts]
    plans = [_plan(model, t, labels) for t in texts]
    if any(p is None for p in plans):
        return model.label_logprobs(prompts, labels)
    window = model.context_window
    if any(len(p[0]) > window for p in plans):  # type: ignore[index]
        return model.label_logprobs(prompts, labels)
    return _run(model, plans, labels, share_prefix)  # type: ignore[arg-type]


def _common_prefix(seqs: Sequence[list[int]], keep: int) -> int:
    first = seqs[0]
    k = min(len(s) for s in seqs) - keep  # the positions we read must lie after the prefix
    for s in seqs[1:]:
        j = 0
        while j < k and s[j] == first[j]:
            j += 1
        k = j
    return max(k, 0)


def _run(model: Any, plans: list[tuple[list[int], int, list[int]]], labels: Sequence[str], share: bool) -> list[dict[str, float]]:
    torch = model.torch
    seqs = [p[0] for p in plans]
    n_shared = plans[0][1]  # shared label tokens (same count for every prompt: same labels)
    keep = n_shared + 1  # positions whose next-token distributions we read
    shared = _common_prefix(seqs, keep) if share else 0
    if shared < MIN_SHARED:
        shared = 0
    pad = model.tokenizer.pad_token_id
    out: list[dict[str, float] | None] = [None] * len(plans)
    prefix_cache = None
    if shared:
        ids = torch.tensor([seqs[0][:shared]], device=model.device)
        with torch.no_grad():
            prefix_cache = model.model(input_ids=ids, use_cache=True).past_key_values
    for idx in model._batches([len(s) - shared for s in seqs]):
        rest = [seqs[i][shared:] for i in idx]
        width = max(len(r) for r in rest)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        pos = torch.zeros((len(idx), width), dtype=torch.long)
        for r, toks in enumerate(rest):
            ids[r, width - len(toks):] = torch.tensor(toks)
            mask[r, shared + width - len(toks):] = 1
            pos[r, width - len(toks):] = torch.arange(shared, shared + len(toks))
        kw: dict[str, Any] = {
            "input_ids": ids.to(model.device), "attention_mask": mask.to(model.device),
            "position_ids": pos.to(model.device), "logits_to_keep": keep,
        }
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(idx))
            kw["past_key_values"] = cache
            kw["use_cache"] = True
        with torch.no_grad():
            logits = model.model(**kw).logits[:, -keep:]
        lp = torch.log_softmax(logits.float(), dim=-1)
        for r, i in enumerate(idx):
            seq = seqs[i]
            base = 0.0
            for k in range(n_shared):  # log-probabilities of the shared label tokens
                base += float(lp[r, k, seq[len(seq) - n_shared + k]])
            out[i] = {lab: base + float(lp[r, -1, t]) for lab, t in zip(labels, plans[i][2])}
    return out  # type: ignore[return-value]
