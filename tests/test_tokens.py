"""The shared token-counting layer (long-context papers and retrieval): counter specs, batched counts,
token spans, offline tiktoken errors, truncation bounds."""

from __future__ import annotations

import pytest

from solstice.errors import ConfigError, DataError
from solstice.models.fake import FakeModel
from solstice.models.tokens import (
    CharCounter,
    HFTokenizerCounter,
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
    for bad in ("nonsense", "chars:x", "model", "words*x", "words*0", "hf:", "chars:0"):
        with pytest.raises(ConfigError):
            get_counter(bad)
    with pytest.raises(ConfigError):
        get_counter(3.5)  # type: ignore[arg-type]


def test_retrieval_spec_forms_and_pass_through(tiny_llama):
    assert get_counter("words*1.3").count("a b c") == 4 and get_counter("words*1.3").name == "words*1.3"
    assert get_counter("words*2").count("") == 0
    minilm = get_counter("minilm")
    assert minilm is get_counter("minilm") and minilm.name == "minilm" and minilm.exact
    # WordPiece: lower-cased, unknown words cut into pieces, no [CLS]/[SEP]
    assert minilm.encode("Hello hello") == minilm.encode("hello HELLO") and minilm.count("hello") == 1
    assert minilm.count("electroencephalography") > 1
    assert get_counter(minilm) is minilm and get_counter(WordCounter(2.0)).name == "words*2"

    class Duck:  # any object with the counter methods passes through unchanged
        name = "duck"

        def count(self, text):
            return 1

        def count_many(self, texts):
            return [1] * len(texts)

        def spans(self, text):
            return [(0, len(text))]

    duck = Duck()
    assert get_counter(duck) is duck
    mc = get_counter(tiny_llama)
    assert isinstance(mc, ModelCounter) and mc.name == f"model:{tiny_llama.name}"
    assert mc.count(TEXT) == tiny_llama.count_tokens(TEXT)


def test_hf_counter_from_a_folder_a_file_or_an_object(tmp_path):
    from solstice.retrieval.encoders import embedded_minilm_dir

    d = embedded_minilm_dir()
    tf = pytest.importorskip("transformers")
    by_dir, by_file = HFTokenizerCounter(str(d)), get_counter(f"hf:{d / 'tokenizer.json'}")
    by_obj = HFTokenizerCounter(tf.AutoTokenizer.from_pretrained(str(d)), name="mine")
    texts = [TEXT, "Tokenizers split un-familiar words: électroencéphalographie!", ""]
    for c in (by_dir, by_file, by_obj):
        assert c.exact and c.info()["vocab_size"] == 30522
        assert c.count_many(texts) == get_counter("minilm").count_many(texts)
        assert [c.spans(t) for t in texts] == [get_counter("minilm").spans(t) for t in texts]
    assert by_dir.name == f"hf:{d}" and by_obj.name == "mine"
    with pytest.raises(ConfigError, match="could not load tokenizer"):
        HFTokenizerCounter(str(tmp_path / "absent"))
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="could not load tokenizer"):
        get_counter(f"hf:{bad}")


def _counters(tiny_llama):
    return [WordCounter(), WordCounter(1.3), CharCounter(3), CharCounter(2.5), get_counter("minilm"),
            ModelCounter(tiny_llama), get_counter("model", FakeModel.from_function(lambda *a: ""))]


def test_count_many_and_spans_agree_with_count(tiny_llama):
    texts = ["", "  ", TEXT, "Ünïcode  text,\twith\npunctuation; and CAPS.", "a" * 37]
    for c in _counters(tiny_llama):
        assert c.count_many(texts) == [c.count(t) for t in texts] and c.count_many([]) == [], c.name
        assert all(c(t) == c.count(t) for t in texts)
        for t in texts:
            sp = c.spans(t)
            assert all(0 <= s <= e <= len(t) for s, e in sp), c.name
            assert all(a[0] <= b[0] for a, b in zip(sp, sp[1:])), c.name
            if not isinstance(c, ModelCounter) or c.exact:  # an estimating model has word spans
                assert len(sp) == c.count(t), (c.name, t)
            if c.exact:
                assert len(c.encode(t)) == c.count(t)
    words = WordCounter()
    assert [TEXT[s:e] for s, e in words.spans(TEXT)] == TEXT.split()
    assert words.encode(TEXT) is None and CharCounter().encode(TEXT) is None
    assert CharCounter(4).spans("abcdefghij") == [(0, 4), (4, 8), (8, 10)]
    assert WordCounter(2).spans("x y") == [(0, 1), (0, 1), (2, 3), (2, 3)]


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


def test_tiktoken_counts_and_spans_with_a_byte_level_encoding():
    tiktoken = pytest.importorskip("tiktoken")
    from solstice.models.tokens import TiktokenCounter

    ranks = {bytes([i]): i for i in range(256)} | {b"ab": 256, b"abab": 257}
    c = TiktokenCounter(tiktoken.Encoding("bytes", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={}))
    assert c.name == "tiktoken:bytes" and c.exact and c.info()["vocab_size"] == 258
    texts = ["abab ab x", "", "é<|endoftext|>ab", "naïve café"]
    assert c.count_many(texts) == [c.count(t) for t in texts] == [len(c.encode(t)) for t in texts]
    assert c.count("abab ab x") == 5 and c.decode(c.encode(texts[2])) == texts[2]
    for t in texts:
        sp = c.spans(t)
        assert len(sp) == c.count(t) and (not sp or sp[-1][1] == len(t))
        assert all(a[1] == b[0] for a, b in zip(sp, sp[1:]))  # contiguous, never inside a character
        assert "".join(t[s:e] for s, e in sp) == t
    assert c.spans("éa") == [(0, 0), (0, 1), (1, 2)]  # é is two byte tokens: the first is empty
    for side in ("middle", "left", "right"):
        assert c.count(truncate_tokens("naïve café " * 9, 17, c, side=side)) <= 17
