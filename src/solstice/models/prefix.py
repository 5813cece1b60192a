"""Label log-probabilities that read a long shared prompt prefix once (transformers models).

Judge prompts and forced-choice task prompts are mostly template (guidelines, instructions, the chat
system turn) and only a short tail differs per item; the answer is read as the log-probability of a
few labels ("A"/"B", "Choice 1"/"Choice 2", "c"/"i"). `SharedPrefixModel(hf_model)` wraps a
transformers model and makes `label_logprobs(prompts, labels)`:

- group the rendered prompts by their leading tokens, run each group's longest common token prefix
  once, keep its key/value cache (also across calls while the prefix stays the same) and score only
  the per-item suffixes against copies of it;
- read every label in ONE forward pass per prompt when the labels share all but their last token
  (single-token labels, or "Choice 1"/"Choice 2"): the shared label tokens are fed as input and their
  log-probabilities are summed from the same pass; labels of other shapes ("correct" vs
  "inc"+"orrect") get one such pass each, still over the cached prefix.

The values equal `loglikelihood` of each (prompt, label) pair with the lm-eval tokenisation
convention (up to float rounding; the tests check it). Prompts longer than the context window go
to the wrapped model's own `label_logprobs`. Suffixes are left-padded and
given explicit position ids (prefix length + offset), and only the last `n_shared + 1` positions'
logits are computed. Everything else (generation, log-likelihoods) is forwarded to the wrapped model.

`fast_label_logprobs(model, prompts, labels)` is the functional form for any backend: white-box
models get the shared-prefix path, others their own `label_logprobs`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from solstice.models.base import CAP_WHITEBOX, Model, ModelWrapper, Prompt
from solstice.models.kv import cache_kwargs, output_cache

log = logging.getLogger(__name__)

# A plan: the input tokens of one prompt (context + shared label tokens), how many shared label
# tokens end it, and each label's final token.
Plan = tuple[list[int], int, list[int]]


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def _split(model: Any, text: str, label: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) with the lm-eval convention of HFModel.loglikelihood."""
    whole = model.encode(text + label)
    ctx = model.encode(text)
    k = common_prefix_len([whole, ctx])
    return whole[:k], whole[k:]


def label_plan(model: Any, text: str, labels: Sequence[str]) -> Plan | None:
    """How one forward pass reads all labels after `text`; None when the labels do not share all
    but their last token (then each needs its own pass)."""
    splits = [_split(model, text, lab) for lab in labels]
    ctx = splits[0][0]
    conts = [c for _, c in splits]
    if not ctx or any(s[0] != ctx for s in splits) or any(not c for c in conts):
        return None
    n = len(conts[0])
    if any(len(c) != n for c in conts) or any(c[:-1] != conts[0][:-1] for c in conts):
        return None
    return ctx + conts[0][:-1], n - 1, [c[-1] for c in conts]


class SharedPrefixModel(ModelWrapper):
    """Wraps an hf model (anything with `.model`, `.tokenizer`, `.encode` and `.render`).

    min_prefix: groups whose common prefix is shorter are scored without a cache (still one pass).
    group_tokens: prompts are grouped by this many leading tokens before the common prefix is taken.
    share_prefix: False scores every prompt whole (one pass per prompt, no cache) — for comparisons.
    """

    def __init__(self, inner: Any, *, min_prefix: int = 32, group_tokens: int = 48, share_prefix: bool = True) -> None:
        for attr in ("model", "tokenizer", "encode", "render"):
            if not hasattr(inner, attr):
                raise TypeError(f"SharedPrefixModel needs a transformers model (missing .{attr})")
        super().__init__(inner)
        self.min_prefix = min_prefix
        self.group_tokens = group_tokens
        self.share_prefix = share_prefix
        self.batch_size = int(getattr(inner, "batch_size", 8))
        self.max_batch_tokens = int(getattr(inner, "max_batch_tokens", 4096))
        self._prefix: tuple[tuple[int, ...], Any] | None = None
        self.prefix_tokens_read = 0
        self.suffix_tokens_read = 0

    def close(self) -> None:
        self._prefix = None
        self.inner.close()

    # -- scoring ---------------------------------------------------------------------------------
    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        if not prompts or not labels:
            return [dict() for _ in prompts]
        texts = [self.inner.render(p) for p in prompts]
        plans = [label_plan(self.inner, t, labels) for t in texts]
        if any(p is None for p in plans) or len({p[1] for p in plans}) != 1:  # type: ignore[index]
            if len(labels) > 1:  # e.g. "correct" vs "inc"+"orrect": one shared-prefix pass per label
                per = [self.label_logprobs(prompts, [lab]) for lab in labels]
                return [{lab: per[j][i][lab] for j, lab in enumerate(labels)} for i in range(len(prompts))]
            return self.inner.label_logprobs(prompts, labels)
        if max(len(p[0]) for p in plans) > self.context_window:  # type: ignore[index]
            return self.inner.label_logprobs(prompts, labels)
        keep = plans[0][1] + 1  # type: ignore[index]  # positions whose next-token distributions we read
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, pl in enumerate(plans):
            key = tuple(pl[0][: self.group_tokens]) if self.share_prefix else (i,)  # type: ignore[index]
            groups.setdefault(key, []).append(i)
        out: list[dict[str, float] | None] = [None] * len(texts)
        for members in groups.values():
            seqs = [plans[i][0] for i in members]  # type: ignore[index]
            p = min(common_prefix_len(seqs), min(len(s) for s in seqs) - keep) if self.share_prefix else 0
            if p < self.min_prefix:
                p = 0
            res = self._score_group(seqs, p, keep, [plans[i][2] for i in members], labels)  # type: ignore[index]
            for i, r in zip(members, res):
                out[i] = r
        return out  # type: ignore[return-value]

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        if self._prefix is not None and self._prefix[0] == prefix:
            return self._prefix[1]
        torch = self.inner.torch
        with torch.no_grad():
            out = self.inner.model(input_ids=torch.tensor([list(prefix)], device=self.inner.device), use_cache=True)
        self.prefix_tokens_read += len(prefix)
        self._prefix = (prefix, output_cache(out))
        return self._prefix[1]

    def _batches(self, lengths: list[int], p: int) -> list[list[int]]:
        """Longest first; batch_size rows at most and (prefix + width) x rows <= max_batch_tokens."""
        batches: list[list[int]] = []
        for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
            if batches and len(batches[-1]) < self.batch_size and (
                    lengths[batches[-1][0]] + p) * (len(batches[-1]) + 1) <= self.max_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _score_group(self, seqs: list[list[int]], p: int, keep: int, finals: list[list[int]],
                     labels: Sequence[str]) -> list[dict[str, float]]:
        torch = self.inner.torch
        device = self.inner.device
        cache = self._prefix_cache(tuple(seqs[0][:p])) if p else None
        suffixes = [s[p:] for s in seqs]
        n_shared = keep - 1
        pad = self.inner.tokenizer.pad_token_id
        results: list[dict[str, float] | None] = [None] * len(seqs)
        for batch in self._batches([len(s) for s in suffixes], p):
            width = max(len(suffixes[i]) for i in batch)
            b = len(batch)
            input_ids = torch.full((b, width), pad, dtype=torch.long)
            mask = torch.zeros((b, p + width), dtype=torch.long)
            mask[:, :p] = 1
            pos = torch.zeros((b, width), dtype=torch.long)
            for r, i in enumerate(batch):
                s = suffixes[i]
                input_ids[r, width - len(s):] = torch.tensor(s)
                mask[r, p + width - len(s):] = 1
                pos[r, width - len(s):] = torch.arange(p, p + len(s))
            kw: dict[str, Any] = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device),
                                  "position_ids": pos.to(device), "logits_to_keep": keep}
            if cache is not None:
                c = copy.deepcopy(cache)
                if b > 1:
                    c.batch_repeat_interleave(b)
                kw.update(cache_kwargs(self.inner.model, c), use_cache=True)
            with torch.no_grad():
                logits = self.inner.model(**kw).logits[:, -keep:]
            lp = torch.log_softmax(logits.float(), dim=-1)
            self.suffix_tokens_read += sum(len(suffixes[i]) for i in batch)
            for r, i in enumerate(batch):
                seq = seqs[i]
                base = sum(float(lp[r, k, seq[len(seq) - n_shared + k]]) for k in range(n_shared))
                results[i] = {lab: base + float(lp[r, -1, t]) for lab, t in zip(labels, finals[i])}
        return results  # type: ignore[return-value]


def fast_label_logprobs(model: Model, prompts: Sequence[Prompt], labels: Sequence[str], *,
                        share_prefix: bool = True, min_prefix: int = 16) -> list[dict[str, float]]:
    """Per prompt, {label: log P(label | prompt)}: the shared-prefix path for white-box models
    (a SharedPrefixModel passed in keeps its cache across calls), `model.label_logprobs` otherwise."""
    if not prompts:
        return []
    if isinstance(model, SharedPrefixModel):
        return model.label_logprobs(prompts, labels)
    if CAP_WHITEBOX not in model.capabilities or not hasattr(model, "tokenizer") or not labels:
        return model.label_logprobs(prompts, labels)
    return SharedPrefixModel(model, min_prefix=min_prefix, share_prefix=share_prefix).label_logprobs(prompts, labels)


def shared_prefix(model: Model, *, min_prefix: int = 16) -> Model:
    """`model` wrapped in a SharedPrefixModel when it is a transformers model, else unchanged."""
    if isinstance(model, SharedPrefixModel) or CAP_WHITEBOX not in model.capabilities:
        return model
    if not all(hasattr(model, a) for a in ("model", "tokenizer", "encode", "render")):
        return model
    return SharedPrefixModel(model, min_prefix=min_prefix)
