"""Token counting, offline, with what was used recorded in the run: how long a text is, where its
tokens lie (for chunking at token budgets) and, where the backend can, its token ids (for exact
truncation). One module for the long-context papers and the retrieval layer.

A counter is chosen by `get_counter(spec, model)`, where `spec` is a string

    model                        the evaluated model's own tokenizer (exact for hf/default models;
                                 an API model's estimate otherwise, marked `exact: False`); needs `model`
    minilm                       the WordPiece tokenizer of the embedded all-MiniLM-L6-v2 (offline)
    hf:<tokenizer dir, id or     a transformers tokenizer (e.g. the tokenizer of an API model), or a
        tokenizer.json file>     `tokenizers` tokenizer file
    tiktoken[:<encoding>]        tiktoken (default cl100k_base). Offline it needs the encoding's BPE
                                 file already cached (TIKTOKEN_CACHE_DIR or tiktoken's default cache)
    tiktoken:<path>.tiktoken     a BPE file on disk named after its encoding (cl100k_base.tiktoken ...);
                                 its published sha256 is checked
    chars[:<n>]                  len(text) / n (default 4): a rough estimate, never exact
    words                        whitespace words (deterministic, no dependency; used by tests)
    words*<f>                    words scaled by a factor (ceil(f × words), a common token proxy)

or a counter (returned as is) or a model-layer `Model` (its own tokenizer, like 'model').

Every counter has `count(text)`, `count_many(texts)` (batched where the backend can), `spans(text)`
(the character (start, end) of each token), `info()` (what a run records) and `exact`. Counters that
can encode also truncate exactly; the others truncate by a binary search over characters.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError, MissingDependencyError, require
from solstice.models.base import CAP_WHITEBOX, Model, Prompt

TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
TIKTOKEN_ENCODINGS = ("cl100k_base", "o200k_base", "p50k_base", "r50k_base")
SPECS = "model, minilm, hf:<tokenizer>, tiktoken[:<encoding or file>], chars[:n], words or words*<factor>"

_WORD = re.compile(r"\S+")


class TokenCounter:
    """Base: counts tokens of a text. Subclasses set `name` and `exact` and implement `count` and
    `spans`; `count_many` is batched where the backend can; `encode`/`decode` where it has ids."""

    name: str = "?"
    exact: bool = False

    def count(self, text: str) -> int:
        raise NotImplementedError

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token, in order."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int] | None:
        """Token ids when the counter can produce them (exact truncation), else None."""
        return None

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {"counter": self.name, "exact": self.exact}

    def __call__(self, text: str) -> int:
        return self.count(text)


def _load_tokenizer(target: str | Path) -> Any:
    """A `tokenizers` tokenizer from a tokenizer.json file, else a transformers tokenizer from a
    folder or hub id; a one-line ConfigError when it cannot be loaded."""
    p = Path(target).expanduser()
    try:
        if p.is_file():
            tokenizers = require("tokenizers", "hf", "token counting")
            return tokenizers.Tokenizer.from_file(str(p))
        tf = require("transformers", "hf", "counting tokens with a transformers tokenizer")
        return tf.AutoTokenizer.from_pretrained(str(target))
    except (ConfigError, MissingDependencyError):
        raise
    except Exception as exc:  # transformers / tokenizers raise OSError, ValueError, their own errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"could not load tokenizer '{target}' for token counting (a folder, a tokenizer.json file, "
            f"or a hub id when online): {first}"
        ) from None


class HFTokenizerCounter(TokenCounter):
    """A Hugging Face tokenizer, without special tokens: a fast `tokenizers.Tokenizer` or a
    transformers tokenizer, given as an object or loaded from a path / hub id."""

    exact = True

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        if isinstance(tokenizer, (str, Path)):
            name = name or f"hf:{tokenizer}"
            tokenizer = _load_tokenizer(tokenizer)
        self.name = name or f"hf:{getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}"
        self._fast = None
        self._tok = None
        if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._fast = tokenizer
        else:
            self._tok = tokenizer

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._fast is not None:
            return [len(e.ids) for e in self._fast.encode_batch(list(texts), add_special_tokens=False)]
        return [len(e) for e in self._tok(list(texts), add_special_tokens=False)["input_ids"]]

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._fast is not None:
            return [tuple(o) for o in self._fast.encode(text, add_special_tokens=False).offsets]  # type: ignore[misc]
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]  # type: ignore[misc]

    def encode(self, text: str) -> list[int]:
        if self._fast is not None:
            return list(self._fast.encode(text, add_special_tokens=False).ids)
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return (self._fast if self._fast is not None else self._tok).decode(ids)

    def info(self) -> dict[str, Any]:
        n = self._fast.get_vocab_size(with_added_tokens=True) if self._fast is not None else len(self._tok)
        return {**super().info(), "vocab_size": n}


class ModelCounter(TokenCounter):
    """The evaluated model's own tokenizer (`Model.count_tokens`; batches and spans through its
    tokenizer when it has one, else whitespace-word spans)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = f"model:{model.name}"
        self.exact = CAP_WHITEBOX in getattr(model, "capabilities", ())
        tok = getattr(model, "tokenizer", None)
        self._inner = HFTokenizerCounter(tok, self.name) if tok is not None else None

    def count(self, text: str) -> int:
        return int(self.model.count_tokens(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if self._inner is not None:
            return self._inner.count_many(texts)
        return [self.count(t) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return (self._inner or WordCounter()).spans(text)

    def encode(self, text: str) -> list[int] | None:
        return self._inner.encode(text) if self.exact and self._inner is not None else None

    def decode(self, ids: list[int]) -> str:
        if self._inner is None:
            raise NotImplementedError(f"{self.name} has no tokenizer to decode with")
        return self._inner.decode(ids)

    def info(self) -> dict[str, Any]:
        out = super().info()
        if self.exact and self._inner is not None:
            tok = self._inner._fast if self._inner._fast is not None else self._inner._tok
            out["tokenizer"] = type(tok).__name__
            out["vocab_size"] = self._inner.info()["vocab_size"]
        else:
            out["note"] = "approximate: the backend estimates tokens"
        return out


def tiktoken_cache_path(encoding: str) -> Path:
    """Where tiktoken looks for an encoding's BPE file (its own cache convention)."""
    d = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    base = Path(d) if d else Path(tempfile.gettempdir()) / "data-gym-cache"
    return base / hashlib.sha1(TIKTOKEN_URL.format(name=encoding).encode()).hexdigest()


_TIKTOKEN_LOCK = threading.Lock()


def _tiktoken_from_file(path: Path) -> Any:
    """An Encoding from a BPE file on disk, with the published pattern, special tokens and hash."""
    import tiktoken
    import tiktoken.load
    import tiktoken_ext.openai_public as pub

    name = path.name.removesuffix(".tiktoken")
    ctor = pub.ENCODING_CONSTRUCTORS.get(name)
    if ctor is None or name not in TIKTOKEN_ENCODINGS:
        raise ConfigError(f"tiktoken file '{path.name}' must be named after its encoding: one of {', '.join(TIKTOKEN_ENCODINGS)}")
    real = tiktoken.load.load_tiktoken_bpe

    def local(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        data = path.read_bytes()
        if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
            raise DataError(f"tiktoken file '{path}' does not match the published sha256 of {name}")
        return real(str(path))

    with _TIKTOKEN_LOCK:  # the constructor reads its ranks through this module attribute
        saved = pub.load_tiktoken_bpe
        pub.load_tiktoken_bpe = local
        try:
            params = ctor()
        finally:
            pub.load_tiktoken_bpe = saved
    return tiktoken.Encoding(**params)


class TiktokenCounter(TokenCounter):
    """OpenAI's BPE encodings through tiktoken, offline: a cached encoding, a BPE file on disk, or
    an `Encoding` object."""

    exact = True

    def __init__(self, encoding: Any = "cl100k_base") -> None:
        try:
            import tiktoken
        except ImportError:
            raise MissingDependencyError("tiktoken", "long", "tiktoken token counting") from None
        if isinstance(encoding, tiktoken.Encoding):
            self._enc = encoding
            self.name = f"tiktoken:{encoding.name}"
            return
        p = Path(encoding).expanduser()
        if encoding.endswith(".tiktoken") or p.is_file():
            if not p.is_file():
                raise DataError(f"tiktoken file '{encoding}' does not exist")
            self._enc = _tiktoken_from_file(p)
        else:
            if encoding not in TIKTOKEN_ENCODINGS:
                raise ConfigError(f"unknown tiktoken encoding '{encoding}'; use one of {', '.join(TIKTOKEN_ENCODINGS)}")
            cached = tiktoken_cache_path(encoding)
            if not cached.is_file():
                raise DataError(
                    f"tiktoken's {encoding} BPE file is not cached and cannot be downloaded offline; "
                    f"download {TIKTOKEN_URL.format(name=encoding)} and use tiktoken:<path>/{encoding}.tiktoken, "
                    f"or place it at {cached}"
                )
            self._enc = tiktoken.get_encoding(encoding)
        self.name = f"tiktoken:{self._enc.name}"

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in self._enc.encode_batch(list(texts), disallowed_special=())]

    def spans(self, text: str) -> list[tuple[int, int]]:
        toks = self._enc.encode(text, disallowed_special=())
        if not toks:
            return []
        # tiktoken's own offsets: a token that starts inside a character (byte-level BPE splits some)
        # starts at that character, so a cut at a token boundary never splits a character
        _, starts = self._enc.decode_with_offsets(toks)
        n = len(text)
        return [(min(s, n), min(max(s, e), n)) for s, e in zip(starts, [*starts[1:], n])]

    def encode(self, text: str) -> list[int]:
        return list(self._enc.encode(text, disallowed_special=()))

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "vocab_size": self._enc.n_vocab}


class CharCounter(TokenCounter):
    """len(text) / n characters, rounded up: a rough estimate, never exact."""

    exact = False

    def __init__(self, chars_per_token: float = 4.0) -> None:
        if chars_per_token <= 0:
            raise ConfigError("chars:<n> needs a positive number of characters per token")
        self.per = chars_per_token
        self.name = f"chars:{chars_per_token:g}"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.per)

    def spans(self, text: str) -> list[tuple[int, int]]:
        n = len(text)
        return [(int(i * self.per), min(n, int((i + 1) * self.per))) for i in range(self.count(text))]


class WordCounter(TokenCounter):
    """Whitespace words, optionally scaled (`words*1.3` counts ceil(1.3 × words))."""

    exact = False

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ConfigError(f"word counter scale must be positive, got {scale}")
        self.scale = scale
        self.name = "words" if scale == 1.0 else f"words*{scale:g}"

    def count(self, text: str) -> int:
        n = len(_WORD.findall(text))
        return n if self.scale == 1.0 else int(-(-n * self.scale // 1))

    def spans(self, text: str) -> list[tuple[int, int]]:
        words = [m.span() for m in _WORD.finditer(text)]
        if self.scale == 1.0:
            return words
        # A scaled count has no exact token positions: spread the words evenly over the count.
        n = self.count(text)
        return [words[min(len(words) - 1, int(i / self.scale))] for i in range(n)] if words else []


_COUNTERS: dict[str, TokenCounter] = {}
_COUNTERS_LOCK = threading.Lock()


def _is_counter(obj: Any) -> bool:
    return isinstance(obj, TokenCounter) or all(hasattr(obj, a) for a in ("name", "count", "count_many", "spans"))


def _from_spec(spec: str) -> TokenCounter:
    if spec == "minilm":
        from solstice.retrieval.encoders import embedded_minilm_dir

        d = embedded_minilm_dir()
        return HFTokenizerCounter(d / "tokenizer.json" if (d / "tokenizer.json").is_file() else d, name="minilm")
    if spec.startswith("words*"):
        try:
            return WordCounter(float(spec[len("words*"):]))
        except ValueError:
            raise ConfigError(f"bad token counter '{spec}'; use e.g. words*1.3") from None
    kind, _, arg = spec.partition(":")
    if kind == "hf" and arg:
        return HFTokenizerCounter(arg)
    if kind == "tiktoken":
        return TiktokenCounter(arg or "cl100k_base")
    if kind == "chars":
        try:
            return CharCounter(float(arg) if arg else 4.0)
        except ValueError:
            raise ConfigError(f"chars:<n> needs a number, got '{arg}'") from None
    if kind == "words":
        return WordCounter()
    raise ConfigError(f"unknown token counter '{spec}'; use {SPECS}")


def get_counter(spec: str | TokenCounter | Model = "model", model: Model | None = None) -> TokenCounter:
    """The counter a spec names (see the module docstring); a counter is returned as is and a
    `Model` gives its own counter. `model` is needed for 'model'. Counters named by a spec other
    than 'model' are built once per process."""
    if not isinstance(spec, str):
        if _is_counter(spec):
            return spec  # type: ignore[return-value]
        if hasattr(spec, "count_tokens"):
            return ModelCounter(spec)  # type: ignore[arg-type]
        raise ConfigError(f"not a token counter: {spec!r}")
    spec = spec.strip()
    if spec.partition(":")[0] == "model":
        if model is None:
            raise ConfigError("token counter 'model' needs a model")
        return ModelCounter(model)
    with _COUNTERS_LOCK:
        if spec not in _COUNTERS:
            _COUNTERS[spec] = _from_spec(spec)
        return _COUNTERS[spec]


def prompt_tokens(model: Model, prompt: Prompt, counter: TokenCounter | None = None) -> int:
    """Tokens of a prompt as the model reads it (chat template applied)."""
    text = model.render(prompt)
    return counter.count(text) if counter is not None else int(model.count_tokens(text))


def truncate_tokens(text: str, max_tokens: int, counter: TokenCounter | Callable[[str], int], *,
                    side: str = "middle", marker: str = "") -> str:
    """`text` cut to at most `max_tokens` tokens, dropping its middle (LongBench's convention), its
    start ('left') or its end ('right'). Exact with counters that encode; otherwise a binary search
    over characters keeps the longest cut whose count fits."""
    if side not in ("middle", "left", "right"):
        raise ConfigError(f"truncation side must be middle, left or right, not '{side}'")
    count = counter.count if isinstance(counter, TokenCounter) else counter
    if max_tokens <= 0:
        return ""
    if count(text) <= max_tokens:
        return text
    if marker and count(marker) >= max_tokens:
        marker = ""
    ids = counter.encode(text) if isinstance(counter, TokenCounter) else None
    if ids is not None:
        dec = counter.decode  # type: ignore[union-attr]

        def from_ids(keep: int) -> str:
            if side == "right":
                return dec(ids[:keep]) + marker
            if side == "left":
                return marker + (dec(ids[len(ids) - keep :]) if keep else "")
            head = keep // 2
            return dec(ids[:head]) + marker + (dec(ids[len(ids) - (keep - head) :]) if keep > head else "")

        keep = max(0, max_tokens - (count(marker) if marker else 0))
        out = from_ids(keep)
        while keep > 0 and (over := count(out) - max_tokens) > 0:  # re-encoding can merge at the seams
            keep = max(0, keep - over)
            out = from_ids(keep)
        return out

    def cut(n_chars: int) -> str:
        if side == "right":
            return text[:n_chars] + marker
        if side == "left":
            return marker + text[len(text) - n_chars :] if n_chars else marker
        h = n_chars // 2
        return text[:h] + marker + text[len(text) - (n_chars - h) :]

    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(cut(mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


__all__ = [
    "CharCounter", "HFTokenizerCounter", "ModelCounter", "TiktokenCounter", "TokenCounter", "WordCounter",
    "get_counter", "prompt_tokens", "tiktoken_cache_path", "truncate_tokens",
]
