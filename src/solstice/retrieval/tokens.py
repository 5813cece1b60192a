"""Token counters: how long a text is, and where its tokens lie (for chunking at token budgets).

Spec strings for `get_counter`:
    minilm                  the WordPiece tokenizer of the embedded all-MiniLM-L6-v2 (default; offline)
    words                   whitespace-separated words (no dependency)
    words*1.3               words scaled by a factor (a common token proxy)
    hf:<dir or hub id>      any transformers / tokenizers tokenizer (a tokenizer.json file also works)
    tiktoken:<encoding>     OpenAI encodings, e.g. tiktoken:cl100k_base (needs `tiktoken` and, once,
                            the network to fetch the vocabulary)
A `Model` of the model layer also works (its own `count_tokens`), e.g. to fit a reader's window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from solstice.errors import ConfigError, require

_WORD = re.compile(r"\S+")


@runtime_checkable
class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token, in order."""
        ...


class WordCounter:
    """Whitespace words, optionally scaled (`words*1.3` counts ceil(1.3 × words))."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ConfigError(f"word counter scale must be positive, got {scale}")
        self.scale = scale
        self.name = "words" if scale == 1.0 else f"words*{scale:g}"

    def count(self, text: str) -> int:
        n = len(_WORD.findall(text))
        return n if self.scale == 1.0 else int(-(-n * self.scale // 1))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self.scale == 1.0:
            return [m.span() for m in _WORD.finditer(text)]
        # A scaled count has no exact token positions: spread the words evenly over the count.
        words = [m.span() for m in _WORD.finditer(text)]
        n = self.count(text)
        return [words[min(len(words) - 1, int(i / self.scale))] for i in range(n)] if words else []


class HFTokenizerCounter:
    """A Hugging Face tokenizer (fast `tokenizers` object or transformers tokenizer), no specials."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self.name = name
        self._fast = None
        self._tf = None
        if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
            tok = tokenizer
            tok.no_truncation()
            tok.no_padding()
            self._fast = tok
        else:
            self._tf = tokenizer

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None) -> HFTokenizerCounter:
        p = Path(path).expanduser()
        if p.is_file() or (p / "tokenizer.json").is_file():
            tokenizers = require("tokenizers", "hf", "token counting")
            f = p if p.is_file() else p / "tokenizer.json"
            return cls(tokenizers.Tokenizer.from_file(str(f)), name or f"hf:{path}")
        tf = require("transformers", "hf", "token counting")
        try:
            tok = tf.AutoTokenizer.from_pretrained(str(path))
        except OSError as exc:
            raise ConfigError(f"cannot load tokenizer '{path}' (a local directory, or a hub id when online)") from exc
        return cls(tok, name or f"hf:{path}")

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._fast is not None:
            return [len(e.ids) for e in self._fast.encode_batch(list(texts), add_special_tokens=False)]
        enc = self._tf(list(texts), add_special_tokens=False)["input_ids"]
        return [len(e) for e in enc]

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._fast is not None:
            return [tuple(o) for o in self._fast.encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]
        enc = self._tf(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]  # type: ignore[misc]


class TiktokenCounter:
    def __init__(self, encoding: str) -> None:
        tiktoken = require("tiktoken", None, "tiktoken token counts")
        try:
            self._enc = tiktoken.get_encoding(encoding)
        except Exception as exc:  # tiktoken fetches its vocabulary over the network once
            raise ConfigError(f"tiktoken encoding '{encoding}' is not available offline ({type(exc).__name__})") from exc
        self.name = f"tiktoken:{encoding}"

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in self._enc.encode_batch(list(texts), disallowed_special=())]

    def spans(self, text: str) -> list[tuple[int, int]]:
        toks = self._enc.encode(text, disallowed_special=())
        out, pos = [], 0
        for t in toks:
            n = len(self._enc.decode_single_token_bytes(t).decode("utf-8", errors="ignore"))
            out.append((pos, min(len(text), pos + n)))
            pos += n
        return out


class ModelCounter:
    """The token counts of a model-layer `Model` (a reader's own tokenizer)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.name = f"model:{model.name}"
        tok = getattr(model, "tokenizer", None)
        self._inner = HFTokenizerCounter(tok, self.name) if tok is not None else None

    def count(self, text: str) -> int:
        return self.model.count_tokens(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if self._inner is not None:
            return self._inner.count_many(texts)
        return [self.model.count_tokens(t) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._inner is not None:
            return self._inner.spans(text)
        return WordCounter().spans(text)


_COUNTERS: dict[str, TokenCounter] = {}


def get_counter(spec: str | TokenCounter | Any = "minilm") -> TokenCounter:
    """A token counter from a spec string (see module docstring), a counter, or a Model."""
    if isinstance(spec, TokenCounter):
        return spec
    if not isinstance(spec, str):
        if hasattr(spec, "count_tokens"):
            return ModelCounter(spec)
        raise ConfigError(f"not a token counter: {spec!r}")
    if spec in _COUNTERS:
        return _COUNTERS[spec]
    if spec == "minilm":
        from solstice.retrieval.encoders import embedded_minilm_dir

        counter: TokenCounter = HFTokenizerCounter.from_path(embedded_minilm_dir(), name="minilm")
    elif spec == "words":
        counter = WordCounter()
    elif spec.startswith("words*"):
        try:
            counter = WordCounter(float(spec[len("words*"):]))
        except ValueError:
            raise ConfigError(f"bad token counter '{spec}'; use e.g. words*1.3") from None
    elif spec.startswith("hf:"):
        counter = HFTokenizerCounter.from_path(spec[3:], name=spec)
    elif spec.startswith("tiktoken:"):
        counter = TiktokenCounter(spec[len("tiktoken:"):])
    else:
        raise ConfigError(
            f"unknown token counter '{spec}'; use minilm, words, words*<factor>, hf:<tokenizer>, "
            "or tiktoken:<encoding>"
        )
    _COUNTERS[spec] = counter
    return counter


__all__ = [
    "HFTokenizerCounter", "ModelCounter", "TiktokenCounter", "TokenCounter",
    "WordCounter", "get_counter",
]
