"""The retrieval experiment: passages vs grouped units vs random groups (and MaxP vs first-window
truncation), scored by support recall and answer recall at k units and at token budgets."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError
from solstice.metrics.retrieval import answer_matcher, budget_cutoff, token_string
from solstice.models.tokens import get_counter
from solstice.papers.longrag.data import Question
from solstice.retrieval.adjacency import Adjacency, build_adjacency
from solstice.retrieval.chunking import Chunk, chunk_units
from solstice.retrieval.documents import Corpus
from solstice.retrieval.grouping import Grouping, group_documents, passage_grouping, random_grouping
from solstice.retrieval.index import UnitIndex

log = logging.getLogger(__name__)


def arm_names(cfg: Any, caps: Sequence[int], *, base: str = "passages", random: bool = True,
              first: bool = True) -> list[str]:
    arms = [base] + [f"units{c}" for c in caps]
    if random and caps:
        arms.append(f"random{max(caps)}")
    if first and caps:
        arms.append(f"first{max(caps)}")
    return arms


class Workbench:
    """Groupings and indexes of one corpus, built once per run (and optionally kept on disk)."""

    def __init__(self, corpus: Corpus, cfg: Any, *, adjacency: str, name: str, base: str = "passages",
                 group_counter: Any = None, relations: Adjacency | None = None) -> None:
        """`group_counter` sizes documents and units (default: `cfg.counter`, which always cuts the
        retrieval chunks): the reader's own tokens when units must fit a reader's budget."""
        self.corpus, self.cfg, self.kind, self.name, self.base = corpus, cfg, adjacency, name, base
        self.counter = get_counter(cfg.counter)
        self.group_counter = get_counter(group_counter) if group_counter is not None else self.counter
        t0 = time.perf_counter()
        self.sizes = dict(zip(corpus.ids, self.group_counter.count_many([d.render() for d in corpus])))
        self.timings: dict[str, float] = {"count_tokens": time.perf_counter() - t0}
        self._adj: Adjacency | None = relations
        self._groupings: dict[str, Grouping] = {}
        self._indexes: dict[tuple[str, str], UnitIndex] = {}
        self._chunks: dict[str, list[Chunk]] = {}
        self._doc_tokens: dict[str, str] | None = None

    # -- groupings -----------------------------------------------------------------------------
    @property
    def adjacency(self) -> Adjacency:
        if self._adj is None:
            t0 = time.perf_counter()
            opts = {"case_sensitive": self.cfg.mention_case_sensitive, "strip_disambiguation": self.cfg.strip_disambiguation,
                    "m": self.cfg.knn_m, "threshold": self.cfg.knn_threshold}
            emb = None
            if "knn" in self.kind:
                from solstice.retrieval.encoders import load_encoder

                emb = load_encoder(self.cfg.encoder).encode_passages([d.render() for d in self.corpus])
            self._adj = build_adjacency(self.corpus, self.kind, embeddings=emb, options=opts)
            self.timings["adjacency"] = time.perf_counter() - t0
        return self._adj

    def grouping(self, arm: str) -> Grouping:
        if arm in self._groupings:
            return self._groupings[arm]
        t0 = time.perf_counter()
        if arm == self.base:
            g = passage_grouping(self.corpus, counter=self.group_counter, sizes=self.sizes)
        elif arm.startswith("units"):
            g = group_documents(self.corpus, self.adjacency, max_tokens=int(arm[5:]), counter=self.group_counter,
                                sizes=self.sizes, split_oversized=self.cfg.split_oversized)
            problems = g.problems()
            if problems:  # the invariants are the point of this layer: never report on a broken grouping
                raise RuntimeError(f"grouping {arm} broke its invariants: {problems[0]}")
        elif arm.startswith("random"):
            g = random_grouping(self.grouping(f"units{arm[6:]}"), seed=self.cfg.seed_control)
        elif arm.startswith("first"):
            g = self.grouping(f"units{arm[5:]}")
        else:
            raise ConfigError(f"unknown arm '{arm}'")
        self.timings[f"group_{arm}"] = time.perf_counter() - t0
        self._groupings[arm] = g
        return g

    # -- indexes -------------------------------------------------------------------------------
    def index(self, arm: str, retriever: str) -> UnitIndex:
        key = (arm, retriever)
        if key in self._indexes:
            return self._indexes[key]
        g = self.grouping(arm)
        cfg = self.cfg
        path = self._index_path(arm, retriever, g)
        if path is not None and (path / "manifest.json").is_file():
            idx = UnitIndex.load(path, encoder=cfg.encoder if retriever == "dense" else None)
            self._indexes[key] = idx
            return idx
        t0 = time.perf_counter()
        if arm.startswith("first"):  # the truncation baseline: only each unit's first window is indexed
            idx = _first_chunks(self.index(f"units{arm[5:]}", retriever))
        else:
            if arm not in self._chunks:
                self._chunks[arm] = chunk_units(g.units, cfg.chunk_tokens, self.counter, mode=cfg.chunking)
            idx = UnitIndex.build(g.units, backend=retriever, chunk_tokens=cfg.chunk_tokens, chunking=cfg.chunking,
                                  counter=self.counter, search=cfg.dense_search,
                                  encoder=self._encoder() if retriever == "dense" else "minilm",
                                  chunks=self._chunks[arm])
        self.timings[f"index_{arm}_{retriever}"] = time.perf_counter() - t0
        if path is not None:
            idx.save(path)
        self._indexes[key] = idx
        return idx

    def _encoder(self):
        from solstice.retrieval.encoders import load_encoder

        return load_encoder(self.cfg.encoder, query_prefix=self.cfg.query_prefix)

    def _index_path(self, arm: str, retriever: str, g: Grouping) -> Path | None:
        if not self.cfg.index_dir:
            return None
        cfg = self.cfg
        blob = json.dumps([self.corpus.fingerprint(), arm, retriever, [list(u.doc_ids) for u in g.units],
                           cfg.chunk_tokens, cfg.chunking, self.counter.name, self.group_counter.name, cfg.encoder,
                           cfg.query_prefix], default=str)
        h = hashlib.sha256(blob.encode()).hexdigest()[:12]
        return Path(cfg.index_dir).expanduser() / f"{self.name}-{arm}-{retriever}-{h}"

    # -- evaluation ----------------------------------------------------------------------------
    def doc_tokens(self, doc_id: str) -> str:
        """The DPR token string of a document (split pieces of oversized documents included)."""
        if self._doc_tokens is None:
            self._doc_tokens = {}
        if doc_id not in self._doc_tokens:
            docs = self.corpus if doc_id in self.corpus else next(
                g.documents for g in self._groupings.values() if doc_id in g.documents)
            self._doc_tokens[doc_id] = token_string(docs.get(doc_id).render())
        return self._doc_tokens[doc_id]

    def rank(self, arm: str, retriever: str, questions: Sequence[Question], ks: Sequence[int],
             budgets: Sequence[int]) -> dict[str, list]:
        """The ranked unit ids per question, as deep as the largest k or budget needs."""
        idx = self.index(arm, retriever)
        depth = min(len(idx), self.cfg.depth)
        t0 = time.perf_counter()
        hits = idx.search([q.text for q in questions], k=depth)
        search_s = time.perf_counter() - t0
        ranked = []
        for hs in hits:
            sizes = [idx.unit(h.unit_id).n_tokens for h in hs]
            need = max([min(max(ks, default=1), len(hs))] + [budget_cutoff(sizes, b) for b in budgets])
            ranked.append([h.unit_id for h in hs[:need]])
        return {"id": [q.id for q in questions], "ranked": ranked, "search_seconds": search_s,
                "n_chunks": len(idx.chunks), "n_units": len(idx)}

    def score(self, arm: str, ranking: dict[str, list], questions: Sequence[Question], ks: Sequence[int],
              budgets: Sequence[int]) -> dict[str, list]:
        """Per-question flags sr_/ar_/tok_ at k units (k{k}) and at token budgets (b{B}).

        The context at k is the documents of the first k units. At a budget B, units are taken in
        rank order while they fit; when the first unit alone exceeds B, only its leading documents
        that fit in B count (what a reader cut to B tokens would see), so no context exceeds B.
        sr: all supporting documents are in the context; ar: some document holds an answer (DPR
        has_answer); tok: the context's tokens.
        """
        units = {u.id: u for u in self.grouping(arm).units}
        by_id = {q.id: q for q in questions}
        out: dict[str, list] = {"id": list(ranking["id"])}
        for qid, ranked in zip(ranking["id"], ranking["ranked"]):
            q = by_id[qid]
            us = [units[u] for u in ranked]
            sizes = [u.n_tokens for u in us]
            contexts: dict[str, list[str]] = {f"k{k}": [d for u in us[:k] for d in u.doc_ids] for k in ks}
            for b in budgets:
                n = budget_cutoff(sizes, b)
                if n == 1 and sizes[0] > b:
                    docs, total = [], 0
                    for d in us[0].doc_ids:
                        total += self._size(arm, d)
                        if total > b:
                            break
                        docs.append(d)
                    contexts[f"b{b}"] = docs
                else:
                    contexts[f"b{b}"] = [d for u in us[:n] for d in u.doc_ids]
            sup = set(q.supporting)
            match = answer_matcher(q.answers)
            for name, docs in contexts.items():
                out.setdefault(f"sr_{name}", []).append(float(sup <= set(docs)) if sup else None)
                out.setdefault(f"ar_{name}", []).append(
                    float(any(match(self.doc_tokens(d)) for d in docs)) if q.answers else None)
                out.setdefault(f"tok_{name}", []).append(float(sum(self._size(arm, d) for d in docs)))
        return out

    def _size(self, arm: str, doc_id: str) -> int:
        return self.sizes[doc_id] if doc_id in self.sizes else self.grouping(arm).sizes[doc_id]


def _first_chunks(full: UnitIndex) -> UnitIndex:
    """An index over only the first chunk of each unit: what encoding a long unit with a short
    encoder window silently does (the pitfall MaxP avoids)."""
    first: dict[int, Chunk] = {}
    for c in full.chunks:
        first.setdefault(c.unit, c)
    return _subset_index(full, [first[i] for i in range(len(full.units))])


def _subset_index(idx: UnitIndex, chunks: list[Chunk]) -> UnitIndex:
    from solstice.retrieval.index import BM25Scorer, DenseScorer

    texts = [idx.units[c.unit].text[c.start:c.end] for c in chunks]
    if isinstance(idx.scorer, DenseScorer):
        scorer: Any = DenseScorer.build(texts, idx.scorer.encoder, idx.scorer.search)
    else:
        scorer = BM25Scorer.build(texts, **{k: v for k, v in idx.scorer.options.items()})
    info = {**idx.info, "chunking": "first", "n_chunks": len(chunks)}
    return UnitIndex(idx.units, chunks, scorer, info)


def pair_stats(wb: Workbench, arm: str, questions: Sequence[Question]) -> dict[str, list[float]]:
    """Per question: are all supporting documents in one unit of `arm`; are they pairwise linked."""
    g = wb.grouping(arm)
    unit_of = g.unit_of
    adj = wb.adjacency
    same, linked = [], []
    for q in questions:
        sup = [s for s in q.supporting if s in unit_of]
        if len(sup) < 2:
            continue
        same.append(float(len({unit_of[s] for s in sup}) == 1))
        linked.append(float(all(b in adj.neighbours.get(a, ()) for i, a in enumerate(sup) for b in sup[i + 1:])))
    return {"same_unit": same, "linked": linked}
