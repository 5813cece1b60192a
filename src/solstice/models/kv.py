"""The KV-cache argument across transformers releases: the Cache object was passed and returned as
`past_key_values` and is now `cache` (the old name deprecated, then removed). Model-layer code
passes `**cache_kwargs(model, cache)` and reads `output_cache(out)`, so both sides of the rename work."""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.lru_cache(maxsize=64)
def _keyword(model_type: type) -> str:
    params = inspect.signature(model_type.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _base(model: Any) -> Any:
    """The transformers model under PEFT and DDP/FSDP wrappers (whose forward takes **kwargs)."""
    for _ in range(8):
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "config"):
            model = model.module
        else:
            break
    return model


def cache_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """`{keyword: cache}` for `model(...)` and `model.generate(...)`, the keyword read from the
    forward of the transformers model (under any PEFT / DDP wrapper)."""
    return {_keyword(type(_base(model))): cache}


def output_cache(out: Any) -> Any:
    """The Cache a forward or generate output carries, under either name."""
    if "cache" in getattr(type(out), "__dataclass_fields__", {}):
        return out.cache
    return out.past_key_values
