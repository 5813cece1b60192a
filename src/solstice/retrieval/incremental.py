"""An append-only BM25 index that grows without rebuilding: each `add` writes a new segment.

bm25s (used by `index.BM25Scorer`) indexes a fixed corpus; a library that ingests one video at a
time must not re-index everything per video. Here each added batch is a segment holding a sparse
term-frequency matrix (scipy CSC) over a global, append-only vocabulary; document frequencies,
N and the average length are global sums over segments, so scores equal a bm25s index built on the
whole corpus at once (same tokenizer, Lucene variant — tested). As in Lucene's log-structured merge
policy, `merge_factor` trailing segments of one size class (a power of ten in documents) are merged
into one, so a library of N documents holds O(log N) segments and each document is re-written
O(log N) times over its life; `compact()` merges everything.

Layout of a saved index directory: `vocab.txt` (terms in id order, one a line, append-only), `segments/<k>.npz` (the CSC
arrays and document lengths), `manifest.json` (segment names, parameters; written last, atomically,
so a crash during `add` leaves the previous index intact).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solstice.core.records import atomic_write_json
from solstice.errors import DataError, require
from solstice.retrieval.bm25_import import bm25s_module


@dataclass
class _Segment:
    name: str
    tf: Any  # scipy.sparse.csc_matrix (docs x vocab-at-write-time), float32
    lengths: np.ndarray  # tokens per document


class SegmentedBM25:
    """BM25 (Lucene idf and length normalisation, as bm25s' default) over appended segments."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en",
                 stemmer: str | None = "english", path: str | Path | None = None, merge_factor: int = 10) -> None:
        self.k1, self.b, self.stopwords, self.stemmer_name = k1, b, stopwords, stemmer
        self.merge_factor = max(2, merge_factor)
        self._next = 0
        self._term_list: list[str] = []
        self._vocab_written, self._vocab_offset = 0, 0
        self.path = Path(path) if path is not None else None
        self.vocab: dict[str, int] = {}
        self.segments: list[_Segment] = []
        self._df = np.zeros(0, dtype=np.int64)
        self._stemmer = None
        if stemmer:
            self._stemmer = require("Stemmer", "rag", "BM25 stemming", package="PyStemmer").Stemmer(stemmer)

    # -- building ------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        bm25s = bm25s_module()
        out = bm25s.tokenize(list(texts), stopwords=self.stopwords, stemmer=self._stemmer,
                             return_ids=False, show_progress=False)
        return [list(t) for t in out]

    def add(self, texts: Sequence[str]) -> range:
        """Index `texts` as one new segment; returns their global document positions."""
        sparse = require("scipy.sparse", None, "BM25 segments", package="scipy")
        start = len(self)
        if not texts:
            return range(start, start)
        rows, cols, lengths = [], [], []
        for r, toks in enumerate(self.tokenize(texts)):
            lengths.append(len(toks))
            for t in toks:
                tid = self.vocab.get(t)
                if tid is None:
                    tid = self.vocab[t] = len(self.vocab)
                rows.append(r)
                cols.append(tid)
        data = np.ones(len(rows), dtype=np.float32)
        tf = sparse.csc_matrix((data, (rows, cols)), shape=(len(texts), len(self.vocab)), dtype=np.float32)
        tf.sum_duplicates()
        seg = _Segment(self._name(), tf, np.asarray(lengths, dtype=np.int64))
        self.segments.append(seg)
        self._add_df(seg)
        if self.path is not None:
            self._write_segment(seg)
        if not self._merge_policy():
            self._save_manifest()
        return range(start, start + len(texts))

    def _name(self) -> str:
        self._next += 1
        return f"{self._next:06d}"

    def _save_manifest(self) -> None:
        if self.path is not None:
            self._write_manifest()

    def _merge_policy(self) -> bool:
        """Merge trailing segments of one size class while `merge_factor` of them exist."""
        merged = False
        while len(self.segments) >= self.merge_factor:
            classes = [len(str(max(1, s.tf.shape[0]))) for s in self.segments]
            run = 0
            for c in reversed(classes):
                if c != classes[-1]:
                    break
                run += 1
            if run < self.merge_factor:
                break
            self._merge(len(self.segments) - run, len(self.segments))
            merged = True
        return merged

    def _add_df(self, seg: _Segment) -> None:
        df = np.diff(seg.tf.indptr)  # documents per column (CSC, duplicates summed)
        if df.size > self._df.size:
            self._df = np.concatenate([self._df, np.zeros(df.size - self._df.size, dtype=np.int64)])
        self._df[: df.size] += df

    def compact(self) -> None:
        """Merge all segments into one (same scores; fewer arrays to visit per query)."""
        if len(self.segments) > 1:
            self._merge(0, len(self.segments))

    def _merge(self, lo: int, hi: int) -> None:
        sparse = require("scipy.sparse", None, "BM25 segments", package="scipy")
        width = len(self.vocab)
        parts = self.segments[lo:hi]
        mats = [sparse.csc_matrix((s.tf.data, s.tf.indices, np.concatenate(
            [s.tf.indptr, np.full(width - s.tf.shape[1], s.tf.indptr[-1])])), shape=(s.tf.shape[0], width))
            for s in parts]
        merged = _Segment(self._name(), sparse.vstack(mats, format="csc"), np.concatenate([s.lengths for s in parts]))
        self.segments[lo:hi] = [merged]
        if self.path is not None:
            self._write_segment(merged)
            self._write_manifest()  # the new manifest names the merged segment before old files go
            for s in parts:
                (self.path / "segments" / f"{s.name}.npz").unlink(missing_ok=True)

    # -- scoring -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(s.tf.shape[0] for s in self.segments)

    @property
    def avgdl(self) -> float:
        n = len(self)
        return float(sum(int(s.lengths.sum()) for s in self.segments) / n) if n else 0.0

    def idf(self, ids: np.ndarray) -> np.ndarray:
        n = len(self)
        df = self._df[ids].astype(np.float64)
        return np.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def query_ids(self, query: str) -> np.ndarray:
        toks = self.tokenize([query])[0]
        ids = [self.vocab[t] for t in toks if t in self.vocab]
        return np.asarray(ids, dtype=np.int64)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for one query (repeated query terms count again, as bm25s)."""
        out = np.zeros(len(self), dtype=np.float64)
        ids = self.query_ids(query)
        if ids.size == 0:
            return out
        idf = self.idf(ids)
        avgdl = self.avgdl or 1.0
        offset = 0
        for seg in self.segments:
            n_docs = seg.tf.shape[0]
            keep = ids < seg.tf.shape[1]
            if keep.any():
                sub = seg.tf[:, ids[keep]].tocoo()
                norm = self.k1 * (1 - self.b + self.b * seg.lengths[sub.row] / avgdl)
                w = idf[keep][sub.col] * sub.data / (sub.data + norm)
                out[offset: offset + n_docs] += np.bincount(sub.row, weights=w, minlength=n_docs)
            offset += n_docs
        return out

    def top_k(self, query: str, k: int, *, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(position, score) of the k best documents with a positive score, best first (ties by position)."""
        s = self.scores(query)
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        pos = np.flatnonzero(s > 0)
        if pos.size == 0:
            return []
        if pos.size > k:
            part = np.argpartition(-s[pos], k - 1)[:k]
            pos = pos[part]
        order = np.lexsort((pos, -s[pos]))
        return [(int(pos[i]), float(s[pos[i]])) for i in order[:k]]

    # -- persistence ---------------------------------------------------------------------------
    def _terms(self) -> list[str]:
        if len(self._term_list) != len(self.vocab):
            self._term_list += sorted((t for t in self.vocab if self.vocab[t] >= len(self._term_list)),
                                      key=self.vocab.__getitem__)
        return self._term_list

    def _write_segment(self, seg: _Segment) -> None:
        d = self.path / "segments"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{seg.name}.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, data=seg.tf.data, indices=seg.tf.indices, indptr=seg.tf.indptr,
                     shape=np.asarray(seg.tf.shape), lengths=seg.lengths)
        tmp.replace(d / f"{seg.name}.npz")

    def _write_manifest(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        terms = self._terms()
        vocab_file = self.path / "vocab.txt"
        written = self._vocab_written if vocab_file.is_file() else 0
        with open(vocab_file, "r+b" if written else "wb") as fh:  # append-only, one term a line
            if written:
                fh.seek(self._vocab_offset)  # drops terms of an add that died before its manifest
                fh.truncate()
            fh.write("".join(t + "\n" for t in terms[written:]).encode("utf-8"))
            self._vocab_offset = fh.tell()
        self._vocab_written = len(terms)
        atomic_write_json(self.path / "manifest.json", {
            "format": "solstice-segmented-bm25/1", "k1": self.k1, "b": self.b, "stopwords": self.stopwords,
            "stemmer": self.stemmer_name, "merge_factor": self.merge_factor, "next_segment": self._next,
            "segments": [s.name for s in self.segments],
            "documents": len(self), "vocabulary": len(terms)})

    @classmethod
    def open(cls, path: str | Path, **params: Any) -> SegmentedBM25:
        """The index saved at `path`, or a new empty one that will be saved there."""
        p = Path(path)
        manifest = p / "manifest.json"
        if not manifest.is_file():
            return cls(path=p, **params)
        try:
            meta = json.loads(manifest.read_text())
            with open(p / "vocab.txt", "rb") as fh:
                terms = [fh.readline().decode("utf-8").rstrip("\n") for _ in range(int(meta["vocabulary"]))]
                offset = fh.tell()
            if len(terms) != len(set(terms)):
                raise ValueError("vocab.txt is shorter than the manifest says")
        except (OSError, ValueError) as exc:
            raise DataError(f"{p}: unreadable BM25 index ({exc})") from None
        self = cls(k1=meta["k1"], b=meta["b"], stopwords=meta["stopwords"], stemmer=meta["stemmer"], path=p,
                   merge_factor=meta.get("merge_factor", 10))
        self._next = int(meta.get("next_segment", len(meta["segments"])))
        sparse = require("scipy.sparse", None, "BM25 segments", package="scipy")
        self.vocab = {t: i for i, t in enumerate(terms)}
        self._term_list, self._vocab_written, self._vocab_offset = terms, len(terms), offset
        for name in meta["segments"]:
            with np.load(p / "segments" / f"{name}.npz") as z:
                tf = sparse.csc_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
                seg = _Segment(name, tf, z["lengths"])
            self.segments.append(seg)
            self._add_df(seg)
        if len(self) != meta["documents"]:
            raise DataError(f"{p}: index holds {len(self)} documents, manifest says {meta['documents']}")
        return self


