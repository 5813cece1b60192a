"""Documents, corpora and retrieval units.

A `Document` is one retrievable piece of text with an id, an optional title, and optional structure
(the `source` it comes from and its `position` there, the titles or ids it `links` to). A `Corpus`
is an ordered collection of documents with unique ids and a content fingerprint. A `Unit` is what a
retriever returns and a reader reads: one document (classic RAG) or several grouped documents
(LongRAG's long units), rendered as one text with each member prefixed by its title.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.errors import DataError

DOC_TEMPLATE = "Title: {title}\nText: {text}"
DOC_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Document:
    """One retrievable text. `links` holds titles (or ids) of documents this one points to."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    position: int = 0
    links: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def render(self, template: str = DOC_TEMPLATE) -> str:
        """The text a retriever indexes and a reader reads: title and text fields."""
        if not self.title:
            return self.text
        return template.format(title=self.title, text=self.text)


class Corpus(Sequence[Document]):
    """An ordered collection of documents with unique, non-empty ids."""

    def __init__(self, docs: Iterable[Document], *, name: str = "") -> None:
        self._docs = list(docs)
        self.name = name
        self._index: dict[str, int] = {}
        for i, d in enumerate(self._docs):
            if not d.id:
                raise DataError(f"corpus '{name}': document #{i} has an empty id")
            if d.id in self._index:
                raise DataError(f"corpus '{name}': duplicate document id '{d.id}'")
            self._index[d.id] = i
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._docs)

    def __getitem__(self, i):  # type: ignore[override]
        return self._docs[i]

    def __iter__(self) -> Iterator[Document]:
        return iter(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._index

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self._docs]

    def get(self, doc_id: str) -> Document:
        try:
            return self._docs[self._index[doc_id]]
        except KeyError:
            raise KeyError(f"no document '{doc_id}' in corpus '{self.name}'") from None

    def position(self, doc_id: str) -> int:
        return self._index[doc_id]

    def fingerprint(self) -> str:
        """sha256 over the documents' (id, title, text, source, position) in corpus order."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for d in self._docs:
                h.update(json.dumps([d.id, d.title, d.text, d.source, d.position]).encode())
                h.update(b"\n")
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        id_key: str = "docid",
        text_key: str = "text",
        title_key: str = "title",
        source_key: str = "source",
        position_key: str = "position",
        links_key: str = "links",
        name: str = "",
    ) -> Corpus:
        """Documents from dicts such as `{"docid", "title", "text"}` (the LongRAG / DPR layout).
        A record without an id gets its row number; `links` may be a list of titles or ids."""
        docs = []
        for i, r in enumerate(records):
            if text_key not in r:
                raise DataError(f"corpus '{name}': record #{i} has no '{text_key}' field")
            did = r.get(id_key, r.get("id", i))
            links = r.get(links_key) or ()
            if isinstance(links, str):
                links = (links,)
            meta = {k: v for k, v in r.items() if k not in {id_key, "id", text_key, title_key,
                                                          source_key, position_key, links_key}}
            docs.append(Document(
                id=str(did), text=str(r[text_key]), title=str(r.get(title_key) or ""),
                source=str(r.get(source_key) or ""), position=int(r.get(position_key) or 0),
                links=tuple(str(x) for x in links), metadata=meta,
            ))
        return cls(docs, name=name)

    @classmethod
    def from_file(cls, path: str | Path, **kw: Any) -> Corpus:
        """A corpus from JSONL (one record per line) or a DPR-style TSV (`id, text, title`)."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"corpus file '{p}' does not exist")
        kw.setdefault("name", p.stem)
        if p.suffix in (".tsv", ".tab"):
            import csv

            with open(p, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            if rows and "id" in rows[0]:
                kw.setdefault("id_key", "id")
            return cls.from_records(rows, **kw)
        from solstice.data.io import read_jsonl

        try:
            rows = list(read_jsonl(p))
        except UnicodeDecodeError as exc:
            raise DataError(f"corpus file '{p}' is not UTF-8 JSONL ({exc.reason})") from None
        return cls.from_records(rows, **kw)


@dataclass(frozen=True, slots=True)
class Unit:
    """A retrieval unit: member documents rendered in a fixed order into one text.

    `doc_spans[i]` is the (start, end) character span of member `doc_ids[i]` inside `text`;
    `n_tokens` is the unit's size under the token counter that built it. `oversized` marks a
    single document larger than the grouping budget.
    """

    id: str
    doc_ids: tuple[str, ...]
    titles: tuple[str, ...]
    text: str
    n_tokens: int
    doc_spans: tuple[tuple[int, int], ...] = ()
    oversized: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "doc_ids": list(self.doc_ids), "titles": list(self.titles),
            "text": self.text, "n_tokens": self.n_tokens,
            "doc_spans": [list(s) for s in self.doc_spans], "oversized": self.oversized,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Unit:
        return cls(
            id=str(d["id"]), doc_ids=tuple(d["doc_ids"]), titles=tuple(d["titles"]), text=d["text"],
            n_tokens=int(d["n_tokens"]), doc_spans=tuple(tuple(s) for s in d.get("doc_spans", ())),
            oversized=bool(d.get("oversized", False)),
        )


def make_unit(
    unit_id: str,
    docs: Sequence[Document],
    n_tokens: int,
    *,
    template: str = DOC_TEMPLATE,
    separator: str = DOC_SEPARATOR,
    oversized: bool = False,
) -> Unit:
    """A unit whose text is the members' rendered texts joined by `separator`."""
    parts, spans, pos = [], [], 0
    for i, d in enumerate(docs):
        if i:
            parts.append(separator)
            pos += len(separator)
        t = d.render(template)
        parts.append(t)
        spans.append((pos, pos + len(t)))
        pos += len(t)
    return Unit(
        id=unit_id, doc_ids=tuple(d.id for d in docs), titles=tuple(d.title for d in docs),
        text="".join(parts), n_tokens=int(n_tokens), doc_spans=tuple(spans), oversized=oversized,
    )


def document_units(corpus: Sequence[Document], sizes: Mapping[str, int] | Sequence[int]) -> list[Unit]:
    """Each document as its own unit (classic passage retrieval). `sizes` gives token counts,
    by id or aligned with the corpus."""
    out = []
    for i, d in enumerate(corpus):
        n = sizes[d.id] if isinstance(sizes, Mapping) else sizes[i]
        out.append(make_unit(d.id, [d], n))
    return out


def save_units(units: Iterable[Unit], path: str | Path) -> None:
    from solstice.data.io import write_jsonl

    write_jsonl(path, (u.to_json() for u in units))


def load_units(path: str | Path) -> list[Unit]:
    from solstice.data.io import read_jsonl

    return [Unit.from_json(r) for r in read_jsonl(path)]
