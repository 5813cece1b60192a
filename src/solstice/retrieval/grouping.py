"""Grouping related documents into long retrieval units under a token budget (LongRAG §2.1).

Algorithm (deterministic):
  1. visit documents by ascending number of neighbours (ties: title, then id);
  2. collect the current groups of the document's neighbours; with none, the document opens a
     singleton group;
  3. otherwise start a new group with the document and absorb neighbouring groups by ascending
     size (ties: creation order) while the total stays within `max_tokens`, stopping at the first
     that does not fit; absorbed groups disappear and their members join the new group;
  4. emit every live group — documents that never touch another are kept as singletons (the
     reference code drops them) — with members in breadth-first order from the group's seed
     (ties by title), each prefixed by its title.
A document larger than the budget stays alone and is reported (`split_oversized=True` first cuts it
into budget-sized pieces that inherit its neighbours).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solstice.errors import ConfigError
from solstice.models.tokens import TokenCounter, get_counter
from solstice.retrieval.adjacency import Adjacency
from solstice.retrieval.chunking import split_spans
from solstice.retrieval.documents import DOC_TEMPLATE, Corpus, Document, Unit, make_unit

log = logging.getLogger(__name__)
GROUPING_VERSION = "1"


@dataclass
class Grouping:
    """Units that partition `documents` (the corpus, with oversized documents split when asked)."""

    units: list[Unit]
    documents: Corpus
    sizes: dict[str, int]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def unit_of(self) -> dict[str, str]:
        return {d: u.id for u in self.units for d in u.doc_ids}

    def problems(self) -> list[str]:
        return partition_problems(self.documents.ids, self.units, self.sizes, self.report.get("max_tokens"))


def partition_problems(
    doc_ids: Sequence[str], units: Sequence[Unit], sizes: Mapping[str, int] | None = None, max_tokens: int | None = None,
) -> list[str]:
    """What breaks the grouping invariants: every document in exactly one unit, and every unit of
    several documents within the budget (empty list when all hold)."""
    seen: dict[str, str] = {}
    out = []
    for u in units:
        for d in u.doc_ids:
            if d in seen:
                out.append(f"document {d} is in units {seen[d]} and {u.id}")
            seen[d] = u.id
        if max_tokens is not None and sizes is not None and len(u.doc_ids) > 1:
            total = sum(sizes[d] for d in u.doc_ids)
            if total > max_tokens:
                out.append(f"unit {u.id} holds {total} tokens > {max_tokens}")
    missing = [d for d in doc_ids if d not in seen]
    if missing:
        out.append(f"{len(missing)} documents are in no unit (e.g. {missing[0]})")
    extra = set(seen) - set(doc_ids)
    if extra:
        out.append(f"{len(extra)} unit members are not corpus documents")
    return out


def _split_oversized(
    corpus: Corpus, adjacency: Adjacency, sizes: dict[str, int], max_tokens: int, counter: TokenCounter,
    template: str,
) -> tuple[Corpus, Adjacency, dict[str, int], list[str]]:
    docs: list[Document] = []
    pieces_of: dict[str, list[str]] = {}
    for d in corpus:
        if sizes[d.id] <= max_tokens:
            docs.append(d)
            continue
        head = counter.count(template.format(title=d.title, text="")) if d.title else 0
        room = max(1, max_tokens - head)
        ids = []
        for k, (s, e, _) in enumerate(split_spans(d.text, room, counter)):
            piece = Document(id=f"{d.id}#{k}", text=d.text[s:e].strip(), title=d.title, source=d.source or d.id,
                             position=k, links=d.links, metadata={**d.metadata, "split_of": d.id})
            docs.append(piece)
            ids.append(piece.id)
        pieces_of[d.id] = ids
    if not pieces_of:
        return corpus, adjacency, sizes, []
    new = Corpus(docs, name=corpus.name)
    new_sizes = dict(zip(new.ids, counter.count_many([d.render(template) for d in new])))

    def expand(i: str) -> list[str]:
        return pieces_of.get(i, [i])

    nb: dict[str, set[str]] = {d.id: set() for d in new}
    for a, neigh in adjacency.neighbours.items():
        for b in neigh:
            for x in expand(a):
                nb[x].update(expand(b))
    for ids in pieces_of.values():
        for x, y in zip(ids, ids[1:]):
            nb[x].add(y)
            nb[y].add(x)
    return new, Adjacency(nb, adjacency.kind, dict(adjacency.info)), new_sizes, sorted(pieces_of)


def group_documents(
    corpus: Corpus,
    adjacency: Adjacency,
    *,
    max_tokens: int = 4000,
    counter: TokenCounter | str = "minilm",
    sizes: Mapping[str, int] | None = None,
    split_oversized: bool = False,
    template: str = DOC_TEMPLATE,
    id_prefix: str = "u",
) -> Grouping:
    """Group `corpus` along `adjacency` into units of at most `max_tokens` tokens (see module doc).

    `sizes` (document id → tokens) overrides counting the rendered documents with `counter`.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
    t0 = time.perf_counter()
    c = get_counter(counter)
    if sizes is None:
        size = dict(zip(corpus.ids, c.count_many([d.render(template) for d in corpus])))
    else:
        missing = [i for i in corpus.ids if i not in sizes]
        if missing:
            raise ConfigError(f"sizes lack {len(missing)} documents (e.g. {missing[0]})")
        size = {i: int(sizes[i]) for i in corpus.ids}
    oversized = sorted(i for i, n in size.items() if n > max_tokens)
    split: list[str] = []
    if split_oversized and oversized:
        corpus, adjacency, size, split = _split_oversized(corpus, adjacency, size, max_tokens, c, template)
    nb = {i: {n for n in adjacency.neighbours.get(i, ()) if n in size and n != i} for i in corpus.ids}
    title = {d.id: d.title for d in corpus}

    order = sorted(corpus.ids, key=lambda i: (len(nb[i]), title[i], i))
    group_of: dict[str, int] = {}
    members: dict[int, list[str]] = {}
    gsize: dict[int, int] = {}
    seed: dict[int, str] = {}
    next_id = 0
    for d in order:
        near = sorted({group_of[n] for n in nb[d] if n in group_of}, key=lambda g: (gsize[g], g))
        new, total = [d], size[d]
        for g in near:
            if total + gsize[g] > max_tokens:
                break
            new += members.pop(g)
            total += gsize.pop(g)
            seed.pop(g)
        members[next_id], gsize[next_id], seed[next_id] = new, total, d
        for x in new:
            group_of[x] = next_id
        next_id += 1

    pos = {i: k for k, i in enumerate(corpus.ids)}
    live = sorted(members, key=lambda g: min(pos[x] for x in members[g]))
    units = []
    for k, g in enumerate(live):
        ordered = _bfs_order(seed[g], set(members[g]), nb, title)
        docs = [corpus.get(x) for x in ordered]
        units.append(make_unit(f"{id_prefix}{k:06d}", docs, gsize[g], template=template,
                               oversized=len(docs) == 1 and gsize[g] > max_tokens))
    n_tok = np.array([u.n_tokens for u in units]) if units else np.zeros(1)
    n_mem = np.array([len(u.doc_ids) for u in units]) if units else np.zeros(1)
    report = {
        "version": GROUPING_VERSION, "max_tokens": max_tokens, "counter": c.name, "adjacency": adjacency.stats(),
        "n_docs": len(corpus), "n_units": len(units), "n_singletons": int((n_mem == 1).sum()),
        "n_isolated_docs": sum(1 for i in corpus.ids if not nb[i]),
        "oversized_docs": oversized, "split_docs": split,
        "unit_tokens": {"mean": float(n_tok.mean()), "median": float(np.median(n_tok)),
                        "p90": float(np.percentile(n_tok, 90)), "max": int(n_tok.max())},
        "unit_members": {"mean": float(n_mem.mean()), "max": int(n_mem.max())},
        "corpus_fingerprint": corpus.fingerprint(), "seconds": round(time.perf_counter() - t0, 3),
    }
    if oversized:
        log.warning("%d documents exceed the %d-token budget%s (e.g. %s)", len(oversized), max_tokens,
                    " and were split" if split else " and stay alone as oversized units", oversized[0])
    return Grouping(units, corpus, size, report)


def _bfs_order(start: str, members: set[str], nb: Mapping[str, set[str]], title: Mapping[str, str]) -> list[str]:
    def key(i: str) -> tuple[str, str]:
        return (title[i], i)

    out, seen, queue = [], {start}, deque([start])
    while queue:
        x = queue.popleft()
        out.append(x)
        for y in sorted((n for n in nb[x] if n in members and n not in seen), key=key):
            seen.add(y)
            queue.append(y)
    if len(out) < len(members):  # not reachable inside the group (cannot happen for connected groups)
        out += sorted(members - seen, key=key)
    return out


def passage_grouping(corpus: Corpus, *, counter: TokenCounter | str = "minilm",
                     sizes: Mapping[str, int] | None = None, template: str = DOC_TEMPLATE) -> Grouping:
    """Each document as its own unit (the classic short-unit baseline); unit id = document id."""
    c = get_counter(counter)
    size = dict(sizes) if sizes is not None else dict(zip(corpus.ids, c.count_many([d.render(template) for d in corpus])))
    units = [make_unit(d.id, [d], size[d.id], template=template) for d in corpus]
    n_tok = np.array([u.n_tokens for u in units]) if units else np.zeros(1)
    report = {"version": GROUPING_VERSION, "max_tokens": None, "counter": c.name, "n_docs": len(corpus),
              "n_units": len(units), "unit_tokens": {"mean": float(n_tok.mean()), "median": float(np.median(n_tok)),
                                                      "p90": float(np.percentile(n_tok, 90)), "max": int(n_tok.max())},
              "corpus_fingerprint": corpus.fingerprint()}
    return Grouping(units, corpus, size, report)


def random_grouping(like: Grouping, *, seed: int = 0, id_prefix: str = "r") -> Grouping:
    """A control: the same documents in random groups with the same member-count distribution as
    `like` (unit sizes in tokens then differ; both are reported)."""
    docs = like.documents
    counts = sorted((len(u.doc_ids) for u in like.units), reverse=True)
    rng = np.random.default_rng(seed)
    ids = list(docs.ids)
    perm = [ids[i] for i in rng.permutation(len(ids))]
    rng.shuffle(counts)
    units, pos = [], 0
    for k, n in enumerate(counts):
        members = sorted(perm[pos:pos + n], key=lambda i: (docs.get(i).title, i))
        pos += n
        units.append(make_unit(f"{id_prefix}{k:06d}", [docs.get(i) for i in members],
                               sum(like.sizes[i] for i in members)))
    n_tok = np.array([u.n_tokens for u in units]) if units else np.zeros(1)
    report = {**{k: v for k, v in like.report.items() if k in ("version", "counter", "corpus_fingerprint", "n_docs")},
              "control_of": like.report.get("max_tokens"), "seed": seed, "n_units": len(units),
              "unit_tokens": {"mean": float(n_tok.mean()), "median": float(np.median(n_tok)),
                              "p90": float(np.percentile(n_tok, 90)), "max": int(n_tok.max())}}
    return Grouping(units, docs, dict(like.sizes), report)
