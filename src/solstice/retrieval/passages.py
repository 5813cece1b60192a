"""Classic passage retrieval for RAG readers: a ranked list of documents per question, from an index
of the retrieval layer (BM25 or dense, one document per unit) or from a user's precomputed top-k
file with corpus ids, then deduplicated, ordered and rendered for the reader's prompt.

    index = passage_index(corpus, backend="bm25")           # any UnitIndex backend
    ranked = search_passages(index, corpus, questions, k=10)
    ranked = load_topk("topk.jsonl", corpus, k=10)          # {qid: [Retrieved, ...]}
    docs, dropped = dedup_documents([r.doc for r in ranked[qid]])
    text = render_numbered(order_for_prompt(docs, reverse=True))

Top-k files are JSONL, one question per line: an id under `id`, `example_id`, `qid` or
`question_id` (or the `question` text), and `ctxs` (or `doc_ids`): a ranked list of corpus ids, or of
objects `{"id", "score"?, "title"?, "text"?}` (DPR / FiD layout). An entry without text is looked up
in the corpus; an id the corpus does not hold is a DataError naming the line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.errors import ConfigError, DataError
from solstice.retrieval.documents import Corpus, Document, document_units

NUMBERED_TEMPLATE = "Document [{id}](Title: {title}) {text}"
QID_KEYS = ("id", "example_id", "qid", "question_id")


@dataclass(frozen=True, slots=True)
class Retrieved:
    """One retrieved document with its score (None when the source gives none) and 0-based rank."""

    doc: Document
    score: float | None
    rank: int


def passage_index(corpus: Corpus, *, backend: str = "bm25", encoder: Any = "minilm", bm25: Mapping | None = None):
    """A `UnitIndex` with one unit (and one chunk) per document; sizes in words."""
    from solstice.retrieval.index import UnitIndex

    units = document_units(corpus, [max(1, len(d.render().split())) for d in corpus])
    biggest = max(u.n_tokens for u in units)
    return UnitIndex.build(units, backend=backend, chunking="document", chunk_tokens=max(8, biggest + 1),
                           counter="words", encoder=encoder, bm25=bm25)


def search_passages(index, corpus: Corpus, queries: Sequence[str], k: int) -> list[list[Retrieved]]:
    """The top-`k` documents per query, best first."""
    hits = index.search(list(queries), k=k)
    return [[Retrieved(corpus.get(h.unit_id), float(h.score), h.rank) for h in hs] for hs in hits]


def _qid(row: Mapping[str, Any], line: int, path: Path) -> str:
    for key in QID_KEYS:
        if row.get(key) is not None:
            return str(row[key])
    if row.get("question"):
        return str(row["question"])
    raise DataError(f"top-k file '{path}' line {line}: no question id ({', '.join(QID_KEYS)} or question)")


def load_topk(path: str | Path, corpus: Corpus | None = None, k: int | None = None) -> dict[str, list[Retrieved]]:
    """A user's precomputed rankings: {question id: ranked documents} (see the module docstring)."""
    from solstice.data.io import read_jsonl

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"top-k file '{p}' does not exist")
    out: dict[str, list[Retrieved]] = {}
    for line, row in enumerate(read_jsonl(p), 1):
        if not isinstance(row, Mapping):
            raise DataError(f"top-k file '{p}' line {line}: expected a JSON object")
        entries = row.get("ctxs", row.get("doc_ids"))
        if not isinstance(entries, list):
            raise DataError(f"top-k file '{p}' line {line}: no 'ctxs' (or 'doc_ids') list")
        docs = []
        for rank, e in enumerate(entries[:k] if k else entries):
            e = e if isinstance(e, Mapping) else {"id": e}
            if e.get("id") is None:
                raise DataError(f"top-k file '{p}' line {line}: entry {rank} has no 'id'")
            did = str(e["id"])
            if "text" in e:
                doc = Document(id=did, text=str(e["text"]), title=str(e.get("title") or ""))
            elif corpus is not None and did in corpus:
                doc = corpus.get(did)
            else:
                where = f"corpus '{corpus.name}'" if corpus is not None else "the file (no text, and no corpus given)"
                raise DataError(f"top-k file '{p}' line {line}: document id '{did}' is not in {where}")
            score = e.get("score")
            docs.append(Retrieved(doc, float(score) if score is not None else None, rank))
        out[_qid(row, line, p)] = docs
    if not out:
        raise DataError(f"top-k file '{p}' holds no rankings")
    return out


def document_hash(doc: Document) -> str:
    """sha256 of "title text" (or the text alone when untitled): equal passages hash equal."""
    s = f"{doc.title} {doc.text}" if doc.title else doc.text
    return hashlib.sha256(s.encode()).hexdigest()


def dedup_documents(docs: Iterable[Document]) -> tuple[list[Document], int]:
    """Documents in the given order with later copies of an equal (title, text) dropped; and how many."""
    docs = list(docs)
    seen: set[str] = set()
    kept: list[Document] = []
    for d in docs:
        h = document_hash(d)
        if h in seen:
            continue
        seen.add(h)
        kept.append(d)
    return kept, len(docs) - len(kept)


def order_for_prompt(docs: Sequence[Document], *, reverse: bool = True) -> list[Document]:
    """Rank order (best first) reversed, so the best document is last, nearest the question."""
    return list(reversed(docs)) if reverse else list(docs)


def render_numbered(docs: Sequence[Document], *, template: str = NUMBERED_TEMPLATE, separator: str = "\n") -> str:
    """Documents rendered with their corpus ids: `Document [id](Title: title) text`, one per line."""
    try:
        return separator.join(template.format(id=d.id, title=d.title, text=d.text) for d in docs)
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"document template '{template}' uses an unknown field {exc}; use id, title, text") from None


def ranked_ids(ranked: Sequence[Retrieved]) -> list[str]:
    return [r.doc.id for r in ranked]


def topk_record(qid: str, ranked: Sequence[Retrieved]) -> str:
    """One line of a top-k file (what `load_topk` reads back): ids and scores, no text."""
    return json.dumps({"id": qid, "ctxs": [{"id": r.doc.id, "score": r.score} for r in ranked]})
