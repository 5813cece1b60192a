"""Loong data: the question file and the document folder a user downloads.

`loong.jsonl` (one instance per line): id, type (financial / legal / paper), language, level (1
Spotlight Locating, 2 Comparison, 3 Clustering, 4 Chain of Reasoning), set (length bucket 1-4),
length (cl100k tokens of the full prompt), question, instruction, prompt_template, doc (document
keys), answer (str / dict / list), shuffle_doc.

The documents (doc.zip of the official README, or ModelScope `iic/Loong`) unzip to:
    doc/financial/<year>-<company>-<suffix>.txt   levels 1-3 match *2024-<key>*.txt, level 4 *<key>*.txt
    doc/paper/<arxiv id>.md                        first line "# Title"
    doc/legal/legal.json                           {case title: {"content": ..., "result": ...}}
"""

from __future__ import annotations

import fnmatch
import glob
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from solstice.data.io import read_jsonl
from solstice.errors import DataError

LEVELS = {1: "spotlight", 2: "comparison", 3: "clustering", 4: "chain"}
TYPES = ("financial", "legal", "paper")
DOCS_HINT = ("download doc.zip from the official README (github.com/MozerWang/Loong) or the ModelScope "
             "dataset iic/Loong and unzip it next to loong.jsonl (or set doc_dir)")


@dataclass(frozen=True)
class LoongItem:
    id: str
    type: str
    language: str
    level: int
    set: int
    length: int
    question: str
    instruction: str
    prompt_template: str
    doc: tuple[str, ...]
    answer: Any
    shuffle_doc: bool

    @property
    def task(self) -> str:
        return LEVELS[self.level]

    @classmethod
    def from_json(cls, row: dict[str, Any], where: str = "") -> LoongItem:
        try:
            item = cls(
                id=str(row["id"]), type=row["type"], language=row.get("language", ""),
                level=int(row["level"]), set=int(row["set"]), length=int(row.get("length", 0)),
                question=row["question"], instruction=row["instruction"],
                prompt_template=row["prompt_template"], doc=tuple(row["doc"]), answer=row["answer"],
                shuffle_doc=bool(row.get("shuffle_doc", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: a Loong row lacks a valid field ({exc})") from None
        if item.type not in TYPES or item.level not in LEVELS:
            raise DataError(f"{where}: Loong row {item.id} has type '{item.type}' / level {item.level}")
        if "{docs}" not in item.prompt_template:
            raise DataError(f"{where}: Loong row {item.id} has a prompt_template without {{docs}}")
        return item


def load_items(path: Path) -> list[LoongItem]:
    rows = read_jsonl(path)
    items = [LoongItem.from_json(r, f"{path.name} line {i + 1}") for i, r in enumerate(rows)]
    dup = [k for k, n in Counter(i.id for i in items).items() if n > 1]
    if dup:
        raise DataError(f"{path.name}: duplicate Loong ids, e.g. {dup[0]}")
    return items


def select(items: Sequence[LoongItem], *, types: Iterable[str] = (), levels: Iterable[int] = (),
           sets: Iterable[int] = (), languages: Iterable[str] = ()) -> list[LoongItem]:
    t, lv, st, lg = set(types), set(levels), set(sets), set(languages)
    return [i for i in items if (not t or i.type in t) and (not lv or i.level in lv)
            and (not st or i.set in st) and (not lg or i.language in lg)]


@dataclass(frozen=True)
class Document:
    key: str
    position: int  # index in the item's `doc` list (legal numbering uses it)
    text: str
    label: str  # financial: company or file label; paper: title
    result: str = ""  # legal judgments only
    path: str = ""


class DocStore:
    """The unzipped document folder; every lookup is validated and misses are listed, never dropped."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DataError(f"Loong document folder '{root}' does not exist; {DOCS_HINT}")
        self.root = root
        self.ambiguous: dict[str, list[str]] = {}

    @cached_property
    def financial_files(self) -> list[str]:
        d = self.root / "financial"
        return sorted(p.name for p in d.glob("*.txt")) if d.is_dir() else []

    @cached_property
    def legal(self) -> dict[str, dict[str, str]]:
        p = self.root / "legal" / "legal.json"
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{p} is not valid JSON ({exc.msg})") from None

    def financial_file(self, key: str, level: int) -> str | None:
        """The reference's file rule (*2024-<key>*.txt, or *<key>*.txt at level 4); sorted, first."""
        pat = f"*{glob.escape(key)}*.txt" if level == 4 else f"*2024-{glob.escape(key)}*.txt"
        hits = [f for f in self.financial_files if fnmatch.fnmatchcase(f, pat)]
        if len(hits) > 1:
            self.ambiguous[key] = hits
        return hits[0] if hits else None

    def exists(self, item: LoongItem, key: str) -> bool:
        if item.type == "financial":
            return self.financial_file(key, item.level) is not None
        if item.type == "paper":
            return (self.root / "paper" / key).is_file()
        return key in self.legal

    def missing(self, items: Iterable[LoongItem]) -> list[tuple[str, str]]:
        """(type, key) of every referenced document that is not in the folder."""
        seen: dict[tuple[str, str], None] = {}
        for it in items:
            for k in it.doc:
                if (it.type, k) not in seen and not self.exists(it, k):
                    seen[(it.type, k)] = None
        return list(seen)

    def load(self, item: LoongItem, key: str, position: int, *, faithful_labels: bool = False) -> Document:
        if item.type == "financial":
            name = self.financial_file(key, item.level)
            if name is None:
                raise DataError(f"Loong financial document '{key}' is not in {self.root / 'financial'}")
            text = (self.root / "financial" / name).read_text(encoding="utf-8", errors="replace")
            # The reference labels a report with the last '-' field of its file stem (often a
            # suffix such as 'j'); the fixed rendering uses the document key (the company name).
            label = Path(name).stem.split("-")[-1] if faithful_labels else key
            return Document(key, position, text, label, path=f"financial/{name}")
        if item.type == "paper":
            p = self.root / "paper" / key
            if not p.is_file():
                raise DataError(f"Loong paper '{key}' is not in {self.root / 'paper'}")
            text = p.read_text(encoding="utf-8", errors="replace")
            title = text.split("\n", 1)[0].strip("#").strip()
            return Document(key, position, text, title, path=f"paper/{key}")
        case = self.legal.get(key)
        if case is None:
            raise DataError(f"Loong legal case '{key}' is not in {self.root / 'legal' / 'legal.json'}")
        return Document(key, position, case.get("content", ""), key, result=case.get("result", ""),
                        path="legal/legal.json")


def check_docs(store: DocStore, items: Sequence[LoongItem], allow_missing: bool) -> list[tuple[str, str]]:
    """Missing documents of the selected items: an error listing them unless `allow_missing`."""
    miss = store.missing(items)
    if miss and not allow_missing:
        show = ", ".join(f"{t}/{k}" for t, k in miss[:3])
        raise DataError(
            f"{len(miss)} Loong documents are missing from {store.root} (e.g. {show}); {DOCS_HINT}, "
            "or --set allow_missing_docs=true to run without them (counted per item)")
    return miss


def answer_text(answer: Any) -> str:
    """The gold answer as the reference shows it to the judge (`str()` of the JSON value)."""
    return answer if isinstance(answer, str) else str(answer)
