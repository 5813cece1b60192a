"""The KV-cache keyword across the transformers rename (past_key_values -> cache)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from solstice.models.kv import cache_kwargs, output_cache  # noqa: E402
from solstice.models.tiny import build_tiny  # noqa: E402


class _Old(torch.nn.Module):
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):  # before the rename
        return past_key_values


class _New(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs):  # after it
        return cache


@pytest.mark.parametrize("cls, key", [(_Old, "past_key_values"), (_New, "cache")])
def test_keyword_follows_the_models_forward_also_under_wrappers(cls, key):
    m = cls()
    assert cache_kwargs(m, "C") == {key: "C"}
    assert m(input_ids=None, **cache_kwargs(m, "C")) == "C"

    class Peft(torch.nn.Module):  # forward(**kwargs), base model behind get_base_model()
        def __init__(self, base):
            super().__init__()
            self.base = base

        def get_base_model(self):
            return self.base

        def forward(self, **kw):
            return self.base(**kw)

    class DDP(torch.nn.Module):  # .module, no .config
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kw):
            return self.module(**kw)

    wrapped = DDP(Peft(m))
    assert cache_kwargs(wrapped, "C") == {key: "C"}
    assert wrapped(input_ids=None, **cache_kwargs(wrapped, "C")) == "C"


def test_prefix_cache_then_continuation_equals_the_full_forward():
    model, _ = build_tiny("llama")
    ids = torch.randint(0, 250, (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(input_ids=ids).logits
        out = model(input_ids=ids[:, :16], use_cache=True)
        cache = output_cache(out)
        assert cache.get_seq_length() == 16
        rest = model(input_ids=ids[:, 16:], use_cache=True, **cache_kwargs(model, cache)).logits
    assert (rest - full[:, 16:]).abs().max().item() < 1e-5
