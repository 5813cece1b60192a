"""NQ-open test (the paper's 2,889 questions with their gold passages), titles from the NQ oracle
file, and a local mini-corpus: every distinct gold passage (id = its index in the paper's
Wikipedia corpus) plus optional distractor paragraphs from SQuAD and HotpotQA."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from solstice.data.catalogue import HOTPOT_IRCOT, NQ_OPEN_ORACLE, NQ_OPEN_TEST, SQUAD24  # noqa: F401  (shared files, read as D.<name>)
from solstice.data.io import read_json, read_jsonl
from solstice.errors import DataError
from solstice.metrics.answers import normalize
from solstice.retrieval.documents import Corpus, Document

NQ_ORACLE = NQ_OPEN_ORACLE
NQ_TEST = NQ_OPEN_TEST

_REPO = "https://raw.githubusercontent.com/florin-git/Base-vs-Instruct-LLMs-in-RAG-Systems"
DISTRACTORS = {"squad": SQUAD24, "hotpotqa": HOTPOT_IRCOT}


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    gold_id: str
    gold_text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)


def load_questions(test: Path, oracle: Path | None) -> list[Question]:
    """The 2,889 test questions; `title` from the oracle file (exact question text) where it joins."""
    rows = read_json(test)
    if not isinstance(rows, list) or not rows or "question" not in rows[0]:
        raise DataError(f"'{test}' is not the NQ-open test file (a JSON list of {{example_id, question, answers, text}})")
    titles: dict[str, str] = {}
    if oracle is not None:
        with gzip.open(oracle, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r.get("ctxs"):
                    titles.setdefault(r["question"], r["ctxs"][0].get("title", ""))
    return [Question(str(r["example_id"]), r["question"], tuple(r["answers"]), str(r["idx_gold_in_corpus"]),
                     r["text"], titles.get(r["question"], "")) for r in rows]


def _squad_docs(path: Path) -> list[Document]:
    data = read_json(path)
    docs = []
    for a in data["data"]:
        for j, p in enumerate(a["paragraphs"]):
            docs.append(Document(id=f"squad:{a['title']}:{j}", title=a["title"].replace("_", " "),
                                 text=" ".join(p["context"].split())))
    return docs


def _hotpot_docs(path: Path) -> list[Document]:
    seen: dict[str, Document] = {}
    for r in read_jsonl(path):
        for c in r["contexts"]:
            if c["title"] not in seen:
                seen[c["title"]] = Document(id=f"hotpotqa:{c['title']}", title=c["title"],
                                            text=" ".join(c["paragraph_text"].split()))
    return list(seen.values())


def mini_corpus(questions: list[Question], distractors: dict[str, Path]) -> Corpus:
    """Distinct gold passages (one per corpus id) then the distractor paragraphs; a distractor whose
    normalised text equals a gold passage's is left out."""
    docs: dict[str, Document] = {}
    for q in questions:
        if q.gold_id not in docs:
            docs[q.gold_id] = Document(id=q.gold_id, title=q.title, text=q.gold_text, source="nq-gold")
    gold_norm = {normalize(d.text) for d in docs.values()}
    for name, path in distractors.items():
        extra = _squad_docs(path) if name == "squad" else _hotpot_docs(path)
        for d in extra:
            if d.id not in docs and normalize(d.text) not in gold_norm:
                docs[d.id] = Document(id=d.id, title=d.title, text=d.text, source=name)
    return Corpus(docs.values(), name="nq-gold+" + "+".join(distractors) if distractors else "nq-gold")
