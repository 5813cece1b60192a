"""Reading a prompt once for several continuations (hf models).

`transformers.generate(num_return_sequences=n)` copies every prompt n times before the first
forward pass, so the prompt is read n times; a second call (a greedy answer after the samples, a
teacher-forced pass over the answer) reads it again. Here a batch of prompts is read once into a
key/value cache (`prefill`), and every continuation starts from a copy of it:

    generate_shared_prefix(model, prompts, params)     drop-in for model.generate(prompts, params)
    pre = prefill(model, prompts)
    generate_from(model, pre, params)                   n completions per prompt from the cache
    continuation_states(model, pre, token_ids)          hidden states of last prompt token +
                                                        given tokens, teacher-forced

Completions have the same form as `HFModel.generate` (stop strings trimmed, per-token
log-probabilities when asked); greedy decoding gives the same tokens as `HFModel.generate`.
Other backends fall back to their own `generate`.

Related, not the same: `solstice.models.prefix.SharedPrefixModel` reads a prefix common to *many
different prompts* (a judge template) once and scores one next-token distribution per prompt;
this module reads *each prompt* once and decodes several continuations from it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solstice.models.base import Completion, GenParams, Model, Prompt
from solstice.models.kv import cache_kwargs, output_cache


@dataclass
class Prefix:
    """A left-padded prompt batch; `cache` holds every token but the last one of each prompt."""

    ids: Any
    mask: Any
    cache: Any

    def copy(self) -> Prefix:
        return Prefix(self.ids, self.mask, copy.deepcopy(self.cache))


def _is_hf(model: Model) -> bool:
    from solstice.models.base import unwrap
    from solstice.models.hf import HFModel

    return isinstance(unwrap(model), HFModel)


def prefill(model: Any, prompts: Sequence[Prompt] | None = None, *, token_ids: Sequence[list[int]] | None = None) -> Prefix:
    """Read the prompts (or given token id lists, each of length >= 2) into a cache."""
    torch = model.torch
    enc = [list(t) for t in token_ids] if token_ids is not None else [model.encode(model.render(p)) for p in prompts or ()]
    if not enc or any(len(e) < 2 for e in enc):
        raise ValueError("prefill needs prompts of at least two tokens")
    ids, mask = model._pad_left(enc)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        res = model.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1], use_cache=True)
    return Prefix(ids, mask, output_cache(res))


def generate_from(model: Any, pre: Prefix, params: GenParams, *, seed_offset: int = 0) -> list[list[Completion]]:
    """`params.n` completions per prompt, continuing from `pre` (whose cache is consumed: pass
    `pre.copy()` to keep it).

    Temperature / top-k sampling (or greedy) is decoded here, and a row leaves the batch as soon as
    it hits EOS or a stop string, so short answers among long ones cost no further steps; top-p
    goes through `transformers.generate`. Log-probabilities are those of the sampling
    distribution (logits / temperature, renormalised over the top k), as
    `compute_transition_scores` gives. Note that `transformers.generate` samples from the top 50
    tokens when top_k is left unset; here top_k = 0 means the full distribution."""
    if params.top_p < 1.0 and not params.greedy:
        return _generate_hf(model, pre, params, seed_offset)
    torch = model.torch
    p = params
    eos = set(model._eos_ids())
    ids, mask, cache = pre.ids, pre.mask, pre.cache
    if p.n > 1:
        cache.batch_repeat_interleave(p.n)
        ids, mask = ids.repeat_interleave(p.n, 0), mask.repeat_interleave(p.n, 0)
    rows = ids.shape[0]
    if not p.greedy:
        torch.manual_seed((p.seed if p.seed is not None else 0) * 100003 + seed_offset)
    toks: list[list[int]] = [[] for _ in range(rows)]
    lps: list[list[float]] = [[] for _ in range(rows)]
    active = torch.arange(rows, device=ids.device)
    cur = ids[:, -1:]
    attn = mask
    pos = mask.sum(-1, keepdim=True) - 1
    stops = [x for x in p.stop if x]
    for _ in range(p.max_new_tokens):
        with torch.no_grad():
            logits = model.model(input_ids=cur, attention_mask=attn, position_ids=pos, **cache_kwargs(model.model, cache),
                                 use_cache=True).logits[:, -1].float()
        if p.greedy:
            logp = torch.log_softmax(logits, dim=-1)
            nxt = logp.argmax(-1)
        else:
            scaled = logits / p.temperature
            if p.top_k and p.top_k < scaled.shape[-1]:
                kth = torch.topk(scaled, p.top_k, dim=-1).values[:, -1:]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            logp = torch.log_softmax(scaled, dim=-1)
            nxt = torch.multinomial(logp.exp(), 1)[:, 0]
        chosen = logp.gather(1, nxt[:, None])[:, 0]
        keep = []
        for j, (r, t, lp) in enumerate(zip(active.tolist(), nxt.tolist(), chosen.tolist())):
            toks[r].append(t)
            lps[r].append(lp)
            done = t in eos
            if not done and stops:
                text = model.tokenizer.decode(toks[r], skip_special_tokens=True)
                done = any(x in text for x in stops)
            if not done:
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(active):
            k = torch.tensor(keep, device=ids.device)
            cache.batch_select_indices(k)
            active, nxt, attn, pos = active[k], nxt[k], attn[k], pos[k]
        cur = nxt[:, None]
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        pos = pos + 1
    eos_list = sorted(eos)
    b = pre.ids.shape[0]
    return [[model._completion(torch.tensor(toks[r * p.n + k], dtype=torch.long), torch.tensor(lps[r * p.n + k])
                               if p.logprobs else None, p, eos_list) for k in range(p.n)] for r in range(b)]


def _generate_hf(model: Any, pre: Prefix, params: GenParams, seed_offset: int) -> list[list[Completion]]:
    """`transformers.generate` from the cache (for top-p sampling)."""
    torch = model.torch
    p = params
    eos = model._eos_ids()
    gcfg = model.generation_config(p, num_return_sequences=1)
    ids, mask, cache = pre.ids, pre.mask, pre.cache
    if p.n > 1:
        cache.batch_repeat_interleave(p.n)
        ids, mask = ids.repeat_interleave(p.n, 0), mask.repeat_interleave(p.n, 0)
    if not p.greedy:
        torch.manual_seed((p.seed if p.seed is not None else 0) * 100003 + seed_offset)
    with torch.no_grad():
        res = model.model.generate(input_ids=ids, attention_mask=mask, **cache_kwargs(model.model, cache),
                                   generation_config=gcfg, tokenizer=model.tokenizer)
    new = res.sequences[:, ids.shape[1]:]
    lps = None
    if p.logprobs:
        lps = model.model.compute_transition_scores(res.sequences, res.scores, normalize_logits=True)
    b = pre.ids.shape[0]
    return [[model._completion(new[r * p.n + k], None if lps is None else lps[r * p.n + k], p, eos)
             for k in range(p.n)] for r in range(b)]


def continuation_states(model: Any, pre: Prefix, token_ids: Sequence[list[int]]) -> list[Any]:
    """Teacher-forced hidden states after the cached prompt: for row r, a float32 tensor
    [L+1, 1 + len(token_ids[r]), d] whose column 0 is the prompt's last token and column j the
    j-th given token. Consumes `pre.cache`."""
    torch = model.torch
    b = pre.ids.shape[0]
    width = 1 + max((len(t) for t in token_ids), default=0)
    pad = model.tokenizer.pad_token_id
    cont = torch.full((b, width), pad, dtype=torch.long)
    cmask = torch.zeros((b, width), dtype=torch.long)
    for r, t in enumerate(token_ids):
        row = [int(pre.ids[r, -1])] + list(t)
        cont[r, : len(row)] = torch.tensor(row)
        cmask[r, : len(row)] = 1
    cont, cmask = cont.to(pre.ids.device), cmask.to(pre.ids.device)
    start = pre.mask.sum(-1, keepdim=True) - 1  # position of the last prompt token
    pos = start + torch.arange(width, device=cont.device)[None, :]
    full_mask = torch.cat([pre.mask[:, :-1], cmask], dim=1)
    with torch.no_grad():
        hs = model.model(input_ids=cont, attention_mask=full_mask, position_ids=pos, **cache_kwargs(model.model, pre.cache),
                         use_cache=True, output_hidden_states=True).hidden_states
    stack = torch.stack(hs, dim=1).float().cpu()  # [B, L+1, W, d]
    return [stack[r, :, : 1 + len(t)] for r, t in enumerate(token_ids)]


def generate_shared_prefix(model: Model, prompts: Sequence[Prompt], params: GenParams) -> list[list[Completion]]:
    """Like `model.generate(prompts, params)`, reading each prompt once for all `params.n`
    completions (hf models; other backends use their own `generate`)."""
    if not _is_hf(model) or not prompts:
        return model.generate(prompts, params)
    m: Any = model
    enc = [m.encode(m.render(pr)) for pr in prompts]
    if any(len(e) < 2 for e in enc):
        return model.generate(prompts, params)
    out: list[list[Completion] | None] = [None] * len(prompts)
    lengths = [len(e) + params.max_new_tokens for e in enc]
    for b, idx in enumerate(m._batches(lengths, per_item=params.n)):
        pre = prefill(m, token_ids=[enc[i] for i in idx])
        for i, comps in zip(idx, generate_from(m, pre, params, seed_offset=b)):
            out[i] = comps
    return out  # type: ignore[return-value]
