"""Token counting for long-context work, offline, with what was used recorded in the run.

A counter is chosen by a spec string:

    model                        the evaluated model's own tokenizer (exact for hf/default models;
                                 an API model's estimate otherwise, marked `exact: False`)
    hf:<tokenizer dir or id>     a transformers tokenizer (e.g. the tokenizer of an API model)
    tiktoken[:<encoding>]        tiktoken (default cl100k_base). Offline it needs the encoding's BPE
                                 file already cached (TIKTOKEN_CACHE_DIR or tiktoken's default cache)
    tiktoken:<path>.tiktoken     a BPE file on disk named after its encoding (cl100k_base.tiktoken ...);
                                 its published sha256 is checked
    chars[:<n>]                  len(text) / n (default 4): a rough estimate, never exact
    words                        whitespace words (deterministic; used by tests)

Every counter has `count(text)`, `info()` (what a run records) and `exact`. Counters that can encode
also truncate exactly; the others truncate by a binary search over characters.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError, MissingDependencyError
from solstice.models.base import CAP_WHITEBOX, Model, Prompt

TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
TIKTOKEN_ENCODINGS = ("cl100k_base", "o200k_base", "p50k_base", "r50k_base")


class TokenCounter:
    """Base: counts tokens of a text. Subclasses set `name` and `exact` and implement `count`."""

    name: str = "?"
    exact: bool = False

    def count(self, text: str) -> int:
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


class ModelCounter(TokenCounter):
    """The evaluated model's own tokenizer (`Model.count_tokens`)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = f"model:{model.name}"
        self.exact = CAP_WHITEBOX in model.capabilities
        tok = getattr(model, "tokenizer", None)
        self._tok = tok if self.exact else None

    def count(self, text: str) -> int:
        return int(self.model.count_tokens(text))

    def encode(self, text: str) -> list[int] | None:
        return None if self._tok is None else list(self._tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)

    def info(self) -> dict[str, Any]:
        out = super().info()
        if self._tok is not None:
            out["tokenizer"] = type(self._tok).__name__
            out["vocab_size"] = len(self._tok)
        else:
            out["note"] = "approximate: the backend estimates tokens"
        return out


class HFTokenizerCounter(TokenCounter):
    exact = True

    def __init__(self, target: str) -> None:
        from solstice.errors import require

        tf = require("transformers", "hf", "counting tokens with a transformers tokenizer")
        try:
            self._tok = tf.AutoTokenizer.from_pretrained(target)
        except OSError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"could not load tokenizer '{target}' for token counting: {first}") from None
        self.name = f"hf:{target}"

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "vocab_size": len(self._tok)}


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
    exact = True

    def __init__(self, encoding: str = "cl100k_base") -> None:
        try:
            import tiktoken
        except ImportError:
            raise MissingDependencyError("tiktoken", "long", "tiktoken token counting") from None
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

    def encode(self, text: str) -> list[int]:
        return list(self._enc.encode(text, disallowed_special=()))

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "vocab_size": self._enc.n_vocab}


class CharCounter(TokenCounter):
    exact = False

    def __init__(self, chars_per_token: float = 4.0) -> None:
        if chars_per_token <= 0:
            raise ConfigError("chars:<n> needs a positive number of characters per token")
        self.per = chars_per_token
        self.name = f"chars:{chars_per_token:g}"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.per)


class WordCounter(TokenCounter):
    name = "words"
    exact = False

    def count(self, text: str) -> int:
        return len(text.split())


def get_counter(spec: str = "model", model: Model | None = None) -> TokenCounter:
    """The counter a spec names (see the module docstring). `model` is needed for 'model'."""
    kind, _, arg = spec.strip().partition(":")
    if kind == "model":
        if model is None:
            raise ConfigError("token counter 'model' needs a model")
        return ModelCounter(model)
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
    raise ConfigError(
        f"unknown token counter '{spec}'; use model, hf:<tokenizer>, tiktoken[:<encoding or file>], chars[:n] or words"
    )


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
