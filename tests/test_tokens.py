"""The shared token-counting layer: counter specs, offline tiktoken errors, truncation bounds."""

from __future__ import annotations

import pytest

from solstice.errors import ConfigError, DataError
from solstice.models.fake import FakeModel
from solstice.models.tokens import (
    CharCounter,
    ModelCounter,
    WordCounter,
    get_counter,
    prompt_tokens,
    tiktoken_cache_path,
    truncate_tokens,
)

TEXT = " ".join(f"w{i}" for i in range(100))


def test_counter_specs():
    assert get_counter("words").count("a b  c") == 3
    assert get_counter("chars:2").count("abcde") == 3 and get_counter("chars").count("abcdefgh") == 2
    fake = FakeModel.from_function(lambda *a: "")
    c = get_counter("model", fake)
    assert isinstance(c, ModelCounter) and not c.exact and c.info()["exact"] is False
    assert prompt_tokens(fake, [{"role": "user", "content": "a b c"}], WordCounter()) >= 3
    for bad in ("nonsense", "chars:x", "model"):
        with pytest.raises(ConfigError):
            get_counter(bad)


@pytest.mark.parametrize("side", ["middle", "left", "right"])
@pytest.mark.parametrize("counter", [WordCounter(), CharCounter(3)], ids=["words", "chars"])
def test_truncation_without_encoding(counter, side):
    for budget in (0, 1, 7, 40, 99, 500):
        out = truncate_tokens(TEXT, budget, counter, side=side, marker=" … " if side == "middle" else "")
        assert counter.count(out) <= max(budget, 0) or out == ""
        if budget >= counter.count(TEXT):
            assert out == TEXT
    mid = truncate_tokens(TEXT, 20, WordCounter(), side="middle")
    assert mid.startswith("w0 ") and mid.endswith(" w99")
    with pytest.raises(ConfigError):
        truncate_tokens(TEXT, 5, WordCounter(), side="top")


def test_exact_truncation_with_a_tokenizer(tiny_llama):
    c = ModelCounter(tiny_llama)
    assert c.exact and c.count("hello") == len(c.encode("hello"))
    for side in ("middle", "left", "right"):
        for budget in (3, 50, 200):
            out = truncate_tokens(TEXT, budget, c, side=side, marker="[...]")
            assert c.count(out) <= budget
    assert truncate_tokens(TEXT, 40, c, side="right").startswith("w0 w1")


def test_tiktoken_offline_errors(tmp_path, monkeypatch):
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    assert tiktoken_cache_path("cl100k_base").parent == tmp_path / "empty"
    with pytest.raises(DataError, match="not cached"):
        get_counter("tiktoken")
    with pytest.raises(ConfigError):
        get_counter("tiktoken:gpt-nonexistent")
    fake = tmp_path / "cl100k_base.tiktoken"
    fake.write_bytes(b"YQ== 0\n")
    with pytest.raises(DataError, match="sha256"):
        get_counter(f"tiktoken:{fake}")
    other = tmp_path / "mine.tiktoken"
    other.write_bytes(b"YQ== 0\n")
    with pytest.raises(ConfigError, match="named after"):
        get_counter(f"tiktoken:{other}")
    with pytest.raises(DataError, match="does not exist"):
        get_counter(f"tiktoken:{tmp_path / 'absent.tiktoken'}")
