"""Which documents are related: an undirected adjacency over a corpus, from any of

    links          hyperlinks: a document's `links` name other documents by id or title (exact
                   title first, then a case-insensitive title map); out-of-corpus links are dropped
    mentions       title mentions: the text of A contains the title of B (word-bounded)
    sequence       same source: consecutive documents (by `position`) of one `source`
    knn            nearest neighbours in embedding space: top-m neighbours with cosine >= threshold

Adjacencies combine with `|`. Self-loops are dropped; every edge is symmetric.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solstice.errors import ConfigError
from solstice.retrieval.documents import Corpus, Document

KINDS = ("links", "mentions", "sequence", "knn", "none")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_DISAMBIG = re.compile(r"\s*\([^()]*\)\s*$")


@dataclass
class Adjacency:
    """Neighbour sets keyed by document id (every corpus document has an entry)."""

    neighbours: dict[str, set[str]]
    kind: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_edges(cls, ids: Iterable[str], edges: Iterable[tuple[str, str]], kind: str = "") -> Adjacency:
        nb: dict[str, set[str]] = {i: set() for i in ids}
        for a, b in edges:
            if a == b or a not in nb or b not in nb:
                continue
            nb[a].add(b)
            nb[b].add(a)
        return cls(nb, kind)

    def degree(self, doc_id: str) -> int:
        return len(self.neighbours.get(doc_id, ()))

    @property
    def n_edges(self) -> int:
        return sum(len(v) for v in self.neighbours.values()) // 2

    @property
    def n_isolated(self) -> int:
        return sum(1 for v in self.neighbours.values() if not v)

    def edges(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, nb in self.neighbours.items() for b in nb if a < b)

    def __or__(self, other: Adjacency) -> Adjacency:
        ids = set(self.neighbours) | set(other.neighbours)
        nb = {i: set(self.neighbours.get(i, ())) | set(other.neighbours.get(i, ())) for i in ids}
        return Adjacency(nb, "+".join(k for k in (self.kind, other.kind) if k))

    def stats(self) -> dict[str, Any]:
        deg = [len(v) for v in self.neighbours.values()]
        return {"kind": self.kind, "n_docs": len(deg), "n_edges": self.n_edges, "n_isolated": self.n_isolated,
                "max_degree": max(deg, default=0), "mean_degree": float(np.mean(deg)) if deg else 0.0, **self.info}


def title_map(corpus: Sequence[Document]) -> tuple[dict[str, str], dict[str, str]]:
    """(exact title → id, casefolded title → id); with duplicate titles the first document wins."""
    exact: dict[str, str] = {}
    folded: dict[str, str] = {}
    for d in corpus:
        if d.title:
            t = unicodedata.normalize("NFC", d.title)
            exact.setdefault(t, d.id)
            folded.setdefault(t.casefold(), d.id)
    return exact, folded


def link_adjacency(corpus: Corpus) -> Adjacency:
    """Edges from each document's `links` (document ids, or titles resolved exactly, then casefolded)."""
    exact, folded = title_map(corpus)
    edges, unresolved = [], 0
    for d in corpus:
        for link in d.links:
            t = unicodedata.normalize("NFC", link)
            target = link if link in corpus else exact.get(t) or folded.get(t.casefold())
            if target is None:
                unresolved += 1
                continue
            edges.append((d.id, target))
    adj = Adjacency.from_edges(corpus.ids, edges, "links")
    adj.info["unresolved_links"] = unresolved
    return adj


def _tokens(text: str, case_sensitive: bool) -> list[str]:
    toks = _TOKEN.findall(unicodedata.normalize("NFC", text))
    return toks if case_sensitive else [t.casefold() for t in toks]


def mention_adjacency(
    corpus: Corpus, *, strip_disambiguation: bool = True, min_chars: int = 4, case_sensitive: bool = True,
    max_title_tokens: int = 12, min_stripped_tokens: int = 2,
) -> Adjacency:
    """A–B when the text of A mentions the title of B (or B's mentions A), matched on word tokens.

    `strip_disambiguation` also matches "Kiss and Tell" for the title "Kiss and Tell (1945 film)"
    when the stripped name has at least `min_stripped_tokens` tokens ("September (2007 film)" is
    not matched by every "September"); titles shorter than `min_chars` characters are not matched.
    """
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
    for d in corpus:
        if not d.title:
            continue
        names = {d.title}
        stripped = _DISAMBIG.sub("", d.title)
        if strip_disambiguation and len(_tokens(stripped, True)) >= min_stripped_tokens:
            names.add(stripped)
        for name in names:
            if len(name.strip()) < min_chars:
                continue
            toks = tuple(_tokens(name, case_sensitive))
            if toks and len(toks) <= max_title_tokens:
                by_first[toks[0]].append((toks, d.id))
    edges = []
    for d in corpus:
        toks = _tokens(d.text, case_sensitive)
        found: set[str] = set()
        for i, t in enumerate(toks):
            for name, target in by_first.get(t, ()):
                if target not in found and tuple(toks[i:i + len(name)]) == name:
                    found.add(target)
        edges += [(d.id, t) for t in found]
    adj = Adjacency.from_edges(corpus.ids, edges, "mentions")
    adj.info["directed_mentions"] = sum(1 for a, b in edges if a != b)
    return adj


def sequence_adjacency(corpus: Corpus) -> Adjacency:
    """Consecutive documents of the same `source`, ordered by `position` (then corpus order)."""
    by_source: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for i, d in enumerate(corpus):
        if d.source:
            by_source[d.source].append((d.position, i, d.id))
    edges = []
    for items in by_source.values():
        items.sort()
        edges += [(a[2], b[2]) for a, b in zip(items, items[1:])]
    return Adjacency.from_edges(corpus.ids, edges, "sequence")


def knn_adjacency(
    ids: Sequence[str], embeddings: np.ndarray, *, m: int = 5, threshold: float = 0.5, block: int = 2048,
) -> Adjacency:
    """Each document linked to its top-`m` neighbours whose cosine similarity is >= `threshold`."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.shape[0] != len(ids):
        raise ConfigError(f"knn adjacency: {x.shape[0]} embeddings for {len(ids)} documents")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1
    x = x / norms
    edges = []
    m = min(m, len(ids) - 1)
    if m <= 0:
        return Adjacency.from_edges(ids, [], "knn")
    for s in range(0, len(ids), block):
        sims = x[s:s + block] @ x.T
        for r in range(sims.shape[0]):
            sims[r, s + r] = -np.inf
        top = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        for r in range(sims.shape[0]):
            for j in top[r]:
                if sims[r, j] >= threshold:
                    edges.append((ids[s + r], ids[int(j)]))
    adj = Adjacency.from_edges(ids, edges, "knn")
    adj.info.update({"m": m, "threshold": threshold})
    return adj


def build_adjacency(corpus: Corpus, kind: str, *, embeddings: np.ndarray | None = None,
                    options: Mapping[str, Any] | None = None) -> Adjacency:
    """An adjacency by name; `kind` may combine several with '+', e.g. 'links+mentions'."""
    opts = dict(options or {})
    parts = [k.strip() for k in kind.split("+") if k.strip()]
    if not parts:
        raise ConfigError(f"empty adjacency kind; use one of {', '.join(KINDS)}")
    result: Adjacency | None = None
    for k in parts:
        if k == "links":
            a = link_adjacency(corpus)
        elif k == "mentions":
            a = mention_adjacency(corpus, **{x: opts[x] for x in ("strip_disambiguation", "min_chars", "case_sensitive",
                                                                  "min_stripped_tokens") if x in opts})
        elif k == "sequence":
            a = sequence_adjacency(corpus)
        elif k == "knn":
            if embeddings is None:
                raise ConfigError("knn adjacency needs document embeddings")
            a = knn_adjacency(corpus.ids, embeddings, **{x: opts[x] for x in ("m", "threshold") if x in opts})
        elif k == "none":
            a = Adjacency.from_edges(corpus.ids, [], "none")
        else:
            raise ConfigError(f"unknown adjacency '{k}'; use one of {', '.join(KINDS)} (combine with '+')")
        result = a if result is None else result | a
    assert result is not None
    return result
