"""Shared-prefix scoring for transformers models: read a long common prompt prefix once.

Judge prompts are mostly template (guidelines, instructions, the chat system turn) and only a
short tail differs per item. `SharedPrefixModel(hf_model).label_logprobs(prompts, labels)` groups
the rendered prompts by their leading tokens, runs each group's longest common token prefix once,
keeps its key/value cache, and scores only the per-item suffixes against copies of it. With
single-token labels this is the same computation as `HFModel.label_logprobs` (equal up to float
rounding; the tests check it), at a fraction of the cost when the prefix dominates.

Suffixes are left-padded and given explicit position ids (prefix length + offset), so each row's
last real token sits in the last column and only that column's logits are computed. Everything
else (generation, log-likelihoods, multi-token labels) is forwarded to the wrapped model.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from solstice.models.base import Model, Prompt

log = logging.getLogger(__name__)


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


class SharedPrefixModel(Model):
    """Wraps an hf model (anything with `.model`, `.tokenizer`, `.encode` and `.render`)."""

    def __init__(self, inner: Any, *, min_prefix: int = 32, group_tokens: int = 48) -> None:
        for attr in ("model", "tokenizer", "encode", "render"):
            if not hasattr(inner, attr):
                raise TypeError(f"SharedPrefixModel needs a transformers model (missing .{attr})")
        self.inner = inner
        self.spec = inner.spec
        self.capabilities = inner.capabilities
        self.min_prefix = min_prefix
        self.group_tokens = group_tokens
        self.batch_size = int(getattr(inner, "batch_size", 8))
        self.max_batch_tokens = int(getattr(inner, "max_batch_tokens", 4096))
        self._prefix: tuple[tuple[int, ...], Any] | None = None
        self.prefix_tokens_read = 0
        self.suffix_tokens_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def render(self, prompt: Prompt, add_generation_prompt: bool = True) -> str:
        return self.inner.render(prompt, add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def generate(self, prompts, params=None):
        return self.inner.generate(prompts, params)

    def loglikelihood(self, requests):
        return self.inner.loglikelihood(requests)

    def close(self) -> None:
        self._prefix = None
        self.inner.close()

    # -- scoring ---------------------------------------------------------------------------------
    def _label_token(self, text: str, label: str) -> int:
        whole = self.inner.encode(text + label)
        ctx = self.inner.encode(text)
        k = common_prefix_len([whole, ctx])
        cont = whole[k:]
        return cont[0] if len(cont) == 1 and k == len(ctx) else -1

    def label_logprobs(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[dict[str, float]]:
        if not prompts or not labels:
            return [dict() for _ in prompts]
        texts = [self.inner.render(p) for p in prompts]
        ids = [self._label_token(texts[0], lab) for lab in labels]
        if any(t < 0 for t in ids) or any(self._label_token(t, lab) != i for t in texts[:3] for lab, i in zip(labels, ids)):
            return self.inner.label_logprobs(prompts, labels)
        enc = [self.inner.encode(t) for t in texts]
        if max(len(e) for e in enc) > self.context_window:
            return self.inner.label_logprobs(prompts, labels)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, e in enumerate(enc):
            groups.setdefault(tuple(e[: self.group_tokens]), []).append(i)
        out: list[dict[str, float] | None] = [None] * len(texts)
        for members in groups.values():
            seqs = [enc[i] for i in members]
            p = min(common_prefix_len(seqs), min(len(s) for s in seqs) - 1)
            if p < self.min_prefix:
                res = self.inner.label_logprobs([prompts[i] for i in members], labels)
            else:
                res = self._score_group(seqs, p, ids, labels)
            for i, r in zip(members, res):
                out[i] = r
        return out  # type: ignore[return-value]

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        if self._prefix is not None and self._prefix[0] == prefix:
            return self._prefix[1]
        torch = self.inner.torch
        device = self.inner.device
        with torch.no_grad():
            out = self.inner.model(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True)
        self.prefix_tokens_read += len(prefix)
        self._prefix = (prefix, out.past_key_values)
        return out.past_key_values

    def _score_group(self, seqs: list[list[int]], p: int, ids: list[int], labels: Sequence[str]) -> list[dict[str, float]]:
        torch = self.inner.torch
        device = self.inner.device
        cache = self._prefix_cache(tuple(seqs[0][:p]))
        suffixes = [s[p:] for s in seqs]
        order = sorted(range(len(suffixes)), key=lambda i: -len(suffixes[i]))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and (
                len(suffixes[batches[-1][0]]) + p) * (len(batches[-1]) + 1) <= self.max_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        pad = self.inner.tokenizer.pad_token_id
        results: list[dict[str, float] | None] = [None] * len(seqs)
        for batch in batches:
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
            c = copy.deepcopy(cache)
            if b > 1:
                c.batch_repeat_interleave(b)
            with torch.no_grad():
                logits = self.inner.model(
                    input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                    past_key_values=c, use_cache=True, logits_to_keep=1,
                ).logits[:, -1]
            lp = torch.log_softmax(logits.float(), dim=-1)
            self.suffix_tokens_read += sum(len(suffixes[i]) for i in batch)
            for r, i in enumerate(batch):
                results[i] = {lab: float(lp[r, t]) for lab, t in zip(labels, ids)}
        return results  # type: ignore[return-value]
