"""NQ-open test (the paper's 2,889 questions with their gold passages), titles from the NQ oracle
file, and a local mini-corpus: every distinct gold passage (id = its index in the paper's
Wikipedia corpus) plus optional distractor paragraphs from SQuAD and HotpotQA."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from solstice.data import DataSource
from solstice.data.io import read_json, read_jsonl
from solstice.errors import DataError
from solstice.metrics.answers import normalize
from solstice.retrieval.documents import Corpus, Document

_REPO = "https://raw.githubusercontent.com/florin-git/Base-vs-Instruct-LLMs-in-RAG-Systems"
NQ_TEST = DataSource(
    "nq-open-test-bvi", "nq-open/nq_open_test_dataset.json",
    sha256="6393c9423b55128cfe0a1e6f19e5beec50f3f2250284b4daa407a96cc32ab500",
    license="CC BY-SA 3.0 (data, inside a GPL-3.0 repository)",
    description="NQ-open test, 2,889 questions with answers and the gold 100-word passage (paper's file)")
NQ_ORACLE = DataSource(
    "nq-open-oracle", "nq-open/nq-open-oracle.jsonl.gz",
    sha256="6a7f72b846f663a133ef952244e5a4e43f06bcf190afe34e8fbe687ce0d1653e", license="CC BY-SA 3.0",
    description="2,655 NQ-open questions with their titled gold Wikipedia passage (lost-in-the-middle release)")
SQUAD24 = DataSource(
    "squad-24", "squad/squad_dev_v1.1_24articles.json",
    sha256="bf8ebb60a161d0594f455be869ff3a476d2fe07da92ab1ecb0dea41f50ea64f3", license="CC BY-SA 4.0",
    description="SQuAD v1.1 dev, first 24 articles (distractor paragraphs)")
HOTPOT_IRCOT = DataSource(
    "hotpotqa-ircot", "hotpotqa/hotpotqa_dev_subsampled_500_ircot_format.jsonl",
    sha256="837a919903fedf521211c4271f168ad5458488198e9c4d967bf5f3a579525ce8", license="CC BY-SA 4.0",
    description="500 HotpotQA dev questions with 10 titled paragraphs each (distractor paragraphs)")
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
