"""Generation from several prompts that share a long prefix, reading the prefix once (hf models).

Prompt strategies that compare arms on the same long context (zero-shot, with demonstrations, with
or without an evidence line) send prompts that agree on their first few thousand tokens (instruction
and context) and differ only in a short tail. `generate_common_prefix(model, prompts, params)`
tokenises the rendered prompts, reads their longest common token prefix once into a key/value
cache, and for each prompt extends a copy of that cache with its own tail and decodes from it
(`prefix_sampling.generate_from`). Greedy outputs equal `model.generate` (tested). Other backends,
or prompts without a useful common prefix (< `min_prefix` tokens), go to `model.generate`.

The returned `PrefixStats` count the tokens read: `prefix_tokens` once, `tail_tokens` summed over
prompts; `full_tokens` is what reading every prompt whole would cost.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solstice.models.base import Completion, GenParams, Model, Prompt
from solstice.models.kv import cache_kwargs, output_cache
from solstice.models.prefix import common_prefix_len


@dataclass
class PrefixStats:
    prefix_tokens: int = 0
    tail_tokens: int = 0
    full_tokens: int = 0
    shared: bool = False


def generate_common_prefix(model: Model, prompts: Sequence[Prompt], params: GenParams, *,
                           min_prefix: int = 32) -> tuple[list[list[Completion]], PrefixStats]:
    """Completions for each prompt (as `model.generate`), reading the common prefix once."""
    from solstice.models.base import unwrap
    from solstice.models.prefix_sampling import Prefix, _is_hf, generate_from

    if not prompts:
        return [], PrefixStats()
    m: Any = unwrap(model)  # under a call cache the backend is read directly (the cache cannot serve a KV prefix)
    if not _is_hf(m):
        return model.generate(prompts, params), PrefixStats(full_tokens=0)
    enc = [m.encode(m.render(p)) for p in prompts]
    full = sum(len(e) for e in enc)
    p = min(common_prefix_len(enc), min(len(e) for e in enc) - 1)
    if p < min_prefix or len(prompts) < 2:
        return model.generate(prompts, params), PrefixStats(0, full, full, False)
    torch = m.torch
    dev = m.device
    with torch.no_grad():
        base = output_cache(m.model(input_ids=torch.tensor([enc[0][:p]], device=dev), use_cache=True))
    stats = PrefixStats(prefix_tokens=p, full_tokens=full, shared=True)
    out: list[list[Completion]] = []
    for e in enc:
        cache = copy.deepcopy(base)
        tail = e[p:-1]
        if tail:
            with torch.no_grad():
                res = m.model(input_ids=torch.tensor([tail], device=dev), **cache_kwargs(m.model, cache), use_cache=True,
                              position_ids=torch.arange(p, p + len(tail), device=dev)[None, :])
            cache = output_cache(res)
        stats.tail_tokens += len(e) - p
        ids = torch.tensor([e], device=dev)
        out += generate_from(m, Prefix(ids, torch.ones_like(ids), cache), params)
    return out, stats
