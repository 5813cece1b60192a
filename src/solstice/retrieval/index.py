"""A retrieval index over units, scored by MaxP: a unit's score is the best score of its chunks.

Long units are never truncated to an encoder's window: each unit is cut into chunks (see
`chunking`), chunks are scored by BM25 (bm25s) or a dense encoder (sentence-transformers; exact
inner product with numpy or faiss), and `sim(q, unit) = max over chunks`. With dense numpy the
maximum is taken over all chunks; BM25 (bm25s, one query at a time) and faiss take the top-N chunks
(N = `candidates`, grown until k distinct units are found) and keep each unit's first hit — the
same top-k units as exact MaxP, without a [queries x chunks] matrix (`unit_scores` stays exact).

    index = UnitIndex.build(units, backend="dense")        # or "bm25"
    hits = index.search(["who wrote ..."], k=8)             # list (per query) of Hit
    index.save("idx/");  UnitIndex.load("idx/")             # reload without re-encoding
Passage retrieval is the special case of one document per unit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solstice.errors import ConfigError, DataError, require
from solstice.models.tokens import TokenCounter, get_counter
from solstice.retrieval.bm25_import import bm25s_module
from solstice.retrieval.chunking import Chunk, chunk_texts, chunk_units
from solstice.retrieval.documents import Unit, load_units, save_units
from solstice.retrieval.encoders import Encoder, load_encoder

log = logging.getLogger(__name__)
INDEX_VERSION = "1"
BACKENDS = ("bm25", "dense")
SEARCHES = ("numpy", "faiss")


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved unit: its id, MaxP score, the position of its best chunk, and its rank (0-based)."""

    unit_id: str
    score: float
    chunk: int
    rank: int


# -- chunk scorers -----------------------------------------------------------------------------
class BM25Scorer:
    """BM25 over chunk texts with bm25s (lower-cased, English stop words, Snowball stemmer)."""

    kind = "bm25"

    def __init__(self, model: Any, options: Mapping[str, Any]) -> None:
        self.model, self.options = model, dict(options)
        self._stemmer = self._make_stemmer(self.options.get("stemmer"))

    @staticmethod
    def _make_stemmer(name: str | None):
        if not name:
            return None
        stemmer_mod = require("Stemmer", "rag", "BM25 stemming", package="PyStemmer")
        return stemmer_mod.Stemmer(name)

    @classmethod
    def build(cls, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
              stopwords: str | None = "en", stemmer: str | None = "english") -> BM25Scorer:
        bm25s = bm25s_module()
        opts = {"k1": k1, "b": b, "method": method, "stopwords": stopwords, "stemmer": stemmer}
        self = cls(None, opts)
        model = bm25s.BM25(k1=k1, b=b, method=method)
        model.index(self._tokenize(texts), show_progress=False)
        self.model = model
        return self

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        bm25s = bm25s_module()

        out = bm25s.tokenize(list(texts), stopwords=self.options.get("stopwords"), stemmer=self._stemmer,
                             return_ids=False, show_progress=False)
        return [list(t) for t in out]

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        n = int(self.model.scores["num_docs"])
        out = np.zeros((len(queries), n), dtype=np.float32)
        for r, toks in enumerate(self._tokenize(queries)):
            ids = self.model.get_tokens_ids(toks)
            if ids:
                out[r] = self.model.get_scores_from_ids(ids)
        return out

    def topn(self, queries: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        """The `n` best chunks per query (scores, chunk ids; ties: lower id first), scoring one query
        at a time with bm25s: memory O(chunks), never a [queries x chunks] matrix."""
        num = int(self.model.scores["num_docs"])
        n = min(n, num)
        out_s = np.zeros((len(queries), n), dtype=np.float32)
        out_i = np.zeros((len(queries), n), dtype=np.int64)
        for r, toks in enumerate(self._tokenize(queries)):
            ids = self.model.get_tokens_ids(toks)
            if ids:
                sc = np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)
                s, i = _topn(sc[None, :], n)
                out_s[r], out_i[r] = s[0], i[0]
            else:
                out_i[r] = np.arange(n)
        return out_s, out_i

    def save(self, path: Path) -> None:
        self.model.save(str(path / "bm25"), show_progress=False)

    @classmethod
    def load(cls, path: Path, options: Mapping[str, Any]) -> BM25Scorer:
        bm25s = bm25s_module()
        return cls(bm25s.BM25.load(str(path / "bm25"), show_progress=False), options)


class DenseScorer:
    """Inner products between normalised query and chunk embeddings (numpy, or faiss IndexFlatIP)."""

    kind = "dense"

    def __init__(self, encoder: Encoder, embeddings: np.ndarray, search: str = "numpy") -> None:
        if search not in SEARCHES:
            raise ConfigError(f"unknown dense search '{search}'; use one of {', '.join(SEARCHES)}")
        self.encoder, self.emb, self.search = encoder, np.ascontiguousarray(embeddings, dtype=np.float32), search
        self._faiss = None
        if search == "faiss":
            faiss = require("faiss", "rag", "faiss search", package="faiss-cpu")
            self._faiss = faiss.IndexFlatIP(self.emb.shape[1])
            self._faiss.add(self.emb)

    @classmethod
    def build(cls, texts: Sequence[str], encoder: Encoder, search: str = "numpy") -> DenseScorer:
        return cls(encoder, encoder.encode_passages(list(texts)), search)

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(queries)) @ self.emb.T

    def topn(self, queries: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.encoder.encode_queries(list(queries))
        if self._faiss is not None:
            s, i = self._faiss.search(q, n)
            return s, i
        return _topn(q @ self.emb.T, n)

    def save(self, path: Path) -> None:
        np.save(path / "embeddings.npy", self.emb)


def _topn(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n largest scores per row and their columns, ties broken by the lower column (so exact
    and top-N searches agree at the boundary, not by the partition's arbitrary pick)."""
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    rows = np.arange(scores.shape[0])[:, None]
    kth = scores[rows, part].min(axis=1)
    out_s = np.empty((scores.shape[0], n), dtype=scores.dtype)
    out_i = np.empty((scores.shape[0], n), dtype=np.int64)
    for r in range(scores.shape[0]):
        cand = np.flatnonzero(scores[r] >= kth[r])
        order = np.lexsort((cand, -scores[r, cand]))[:n]
        out_i[r] = cand[order]
        out_s[r] = scores[r, out_i[r]]
    return out_s, out_i


# -- the unit index ----------------------------------------------------------------------------
class UnitIndex:
    """Units, their chunks, and a chunk scorer; `search` returns units ranked by MaxP score."""

    def __init__(self, units: Sequence[Unit], chunks: Sequence[Chunk], scorer: BM25Scorer | DenseScorer,
                 info: Mapping[str, Any]) -> None:
        self.units = list(units)
        self.chunks = list(chunks)
        self.scorer = scorer
        self.info = dict(info)
        self._pos = {u.id: i for i, u in enumerate(self.units)}
        if len(self._pos) != len(self.units):
            raise DataError("unit ids in an index must be unique")
        owner = np.array([c.unit for c in self.chunks], dtype=np.int64)
        if len(owner) and (np.any(np.diff(owner) < 0) or set(owner.tolist()) != set(range(len(self.units)))):
            raise DataError("every unit needs at least one chunk, and a unit's chunks must be contiguous")
        self._owner = owner
        self._starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner

    @classmethod
    def build(
        cls, units: Sequence[Unit], *, backend: str = "bm25", chunk_tokens: int = 200, chunking: str = "window",
        overlap: int = 0, counter: TokenCounter | str = "minilm", encoder: Encoder | str = "minilm",
        search: str = "numpy", bm25: Mapping[str, Any] | None = None, chunks: Sequence[Chunk] | None = None,
    ) -> UnitIndex:
        """Chunk `units` and index the chunks. `encoder` is used by the dense backend only; `chunks`
        (from `chunk_units` with the same settings) skips re-chunking when several indexes share units."""
        if backend not in BACKENDS:
            raise ConfigError(f"unknown retrieval backend '{backend}'; use one of {', '.join(BACKENDS)}")
        if not units:
            raise DataError("cannot build an index over zero units")
        t0 = time.perf_counter()
        c = get_counter(counter)
        if chunks is None:
            chunks = chunk_units(units, chunk_tokens, c, mode=chunking, overlap=overlap)
        texts = chunk_texts(units, chunks)
        info: dict[str, Any] = {"version": INDEX_VERSION, "backend": backend, "chunking": chunking,
                                "chunk_tokens": chunk_tokens, "overlap": overlap, "counter": c.name}
        scorer: BM25Scorer | DenseScorer
        if backend == "bm25":
            scorer = BM25Scorer.build(texts, **dict(bm25 or {}))
            info["bm25"] = scorer.options
        else:
            enc = load_encoder(encoder)
            scorer = DenseScorer.build(texts, enc, search)
            info.update(encoder=enc.info(), encoder_spec=encoder if isinstance(encoder, str) else enc.name,
                        search=search)
        info.update(n_units=len(units), n_chunks=len(chunks), build_seconds=round(time.perf_counter() - t0, 3))
        return cls(units, chunks, scorer, info)

    # -- access --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.units)

    def unit(self, unit_id: str) -> Unit:
        return self.units[self._pos[unit_id]]

    def chunk_text(self, chunk: int) -> str:
        c = self.chunks[chunk]
        return self.units[c.unit].text[c.start:c.end]

    # -- scoring -------------------------------------------------------------------------------
    def chunk_scores(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, n_chunks) scores of every chunk."""
        return self.scorer.scores(list(queries))

    def unit_scores(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, n_units) exact MaxP scores."""
        return np.maximum.reduceat(self.chunk_scores(queries), self._starts, axis=1)

    def search(self, queries: Sequence[str], k: int = 10, *, candidates: int | None = None,
               batch_size: int = 64) -> list[list[Hit]]:
        """The top-`k` units per query by MaxP score (ties: index order)."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        k = min(k, len(self.units))
        out: list[list[Hit]] = []
        for s in range(0, len(queries), batch_size):
            batch = list(queries[s:s + batch_size])
            if isinstance(self.scorer, BM25Scorer) or self.scorer.search == "faiss":
                out += self._search_topn(batch, k, candidates or 50 * k)
            else:
                out += self._search_exact(batch, k)
        return out

    def _search_exact(self, queries: list[str], k: int) -> list[list[Hit]]:
        cs = self.chunk_scores(queries)
        us = np.maximum.reduceat(cs, self._starts, axis=1)
        top_s, top_i = _topn(us, k)
        ends = np.r_[self._starts[1:], len(self.chunks)]
        res = []
        for r in range(len(queries)):
            hits = []
            for rank, (u, sc) in enumerate(zip(top_i[r], top_s[r])):
                a, b = self._starts[u], ends[u]
                best = int(a + np.argmax(cs[r, a:b]))
                hits.append(Hit(self.units[int(u)].id, float(sc), best, rank))
            res.append(hits)
        return res

    def _search_topn(self, queries: list[str], k: int, n: int) -> list[list[Hit]]:
        res: list[list[Hit] | None] = [None] * len(queries)
        todo = list(range(len(queries)))
        n = max(n, k)
        while todo:
            n = min(n, len(self.chunks))
            scores, idx = self.scorer.topn([queries[i] for i in todo], n)  # type: ignore[union-attr]
            left = []
            for row, qi in enumerate(todo):
                seen: dict[int, tuple[float, int]] = {}
                for sc, ci in zip(scores[row], idx[row]):
                    if ci < 0:
                        continue
                    u = int(self._owner[ci])
                    if u not in seen:
                        seen[u] = (float(sc), int(ci))
                if len(seen) >= k or n >= len(self.chunks):
                    best = sorted(seen.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
                    res[qi] = [Hit(self.units[u].id, sc, ci, r) for r, (u, (sc, ci)) in enumerate(best)]
                else:
                    left.append(qi)
            todo, n = left, n * 4
        return res  # type: ignore[return-value]

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        save_units(self.units, p / "units.jsonl")
        np.save(p / "chunks.npy", np.array([[c.unit, c.start, c.end, c.n_tokens] for c in self.chunks], dtype=np.int64))
        self.scorer.save(p)
        (p / "manifest.json").write_text(json.dumps(self.info, indent=1, default=str))
        return p

    @classmethod
    def load(cls, path: str | Path, *, encoder: Encoder | str | None = None, search: str | None = None) -> UnitIndex:
        """Reload a saved index; a dense index reloads its encoder from the recorded spec unless given."""
        p = Path(path)
        mf = p / "manifest.json"
        if not mf.is_file():
            raise DataError(f"'{p}' is not a saved index (no manifest.json)")
        info = json.loads(mf.read_text())
        if str(info.get("version")) != INDEX_VERSION:
            raise DataError(f"index '{p}' has version {info.get('version')}, expected {INDEX_VERSION}; rebuild it")
        units = load_units(p / "units.jsonl")
        arr = np.load(p / "chunks.npy")
        chunks = [Chunk(int(a), int(b), int(c), int(d)) for a, b, c, d in arr]
        if info["backend"] == "bm25":
            scorer: BM25Scorer | DenseScorer = BM25Scorer.load(p, info.get("bm25", {}))
        else:
            enc = load_encoder(encoder if encoder is not None else info.get("encoder_spec", "minilm"),
                               query_prefix=info.get("encoder", {}).get("query_prefix", ""))
            emb = np.load(p / "embeddings.npy")
            if enc.dim and emb.shape[1] != enc.dim:
                raise DataError(f"index '{p}' holds {emb.shape[1]}-d embeddings but encoder {enc.name} gives {enc.dim}")
            scorer = DenseScorer(enc, emb, search or info.get("search", "numpy"))
        return cls(units, chunks, scorer, info)
