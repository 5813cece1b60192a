"""NQ-open oracle questions (question, answers, titled gold passage), the corpus of their distinct
gold passages, a seeded split by question, and the released DPA-RAG example rows (schema and
scorer-parity fixtures; the repository has no licence, so they are read locally and never shipped)."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path

from solstice.data import DataSource
from solstice.data.catalogue import NQ_OPEN_ORACLE
from solstice.data.io import read_jsonl
from solstice.errors import DataError
from solstice.metrics.text import normalize_answer
from solstice.retrieval.documents import Corpus, Document

NQ_ORACLE = NQ_OPEN_ORACLE

_EX = "dongguanting/DPA-RAG example rows (no licence: local use only)"
EXAMPLES = {
    "train": DataSource("dpa-rag-train", "dpa-rag-examples/example_train_dataset.jsonl",
                        sha256="456c8a6e660a8c8bbcc44eae092d1e266dc3465d16762b88a1c7d87f1f803174",
                        license="none (local use only)", description=_EX + ": 20 reranker records"),
    "valid": DataSource("dpa-rag-valid", "dpa-rag-examples/example_valid_dataset.jsonl",
                        sha256="a8c7922f87f93922501c7c54f45c584ec66041e508c70388f99adad50b1e42fd",
                        license="none (local use only)", description=_EX + ": 20 labelled answers"),
    "test": DataSource("dpa-rag-test", "dpa-rag-examples/example_test_dataset.jsonl",
                       sha256="30577810a3bd0f68e67f3cb91bce3e3a1f7eb00ef9f3df365b0d1a5a9b70a3b1",
                       license="none (local use only)", description=_EX + ": 20 labelled answers"),
}


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    gold_id: str


def question_key(text: str) -> str:
    """The form under which two questions count as the same (leak checks): SQuAD-normalised."""
    return normalize_answer(text)


def load_oracle(path: Path) -> tuple[list[Question], Corpus]:
    """Questions in file order (id = line number) and the corpus of their distinct gold passages
    (one document per distinct (title, text))."""
    questions: list[Question] = []
    docs: dict[tuple[str, str], Document] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            ctxs = [c for c in r.get("ctxs", []) if c.get("isgold", True)]
            if not r.get("question") or not r.get("answers") or not ctxs:
                raise DataError(f"'{path}' line {i + 1} lacks question/answers/gold ctxs (not the NQ oracle file)")
            key = (ctxs[0].get("title", ""), " ".join(ctxs[0]["text"].split()))
            if key not in docs:
                docs[key] = Document(id=f"g{len(docs)}", title=key[0], text=key[1], source="nq-gold")
            questions.append(Question(f"nq{i}", r["question"], tuple(r["answers"]), docs[key].id))
    return questions, Corpus(docs.values(), name="nq-oracle-gold")


def split(questions: list[Question], test_share: float, seed: int) -> tuple[list[Question], list[Question]]:
    """(train, test) by question, seeded; a question whose normalised text also occurs in the test
    part never lands in train (duplicates go to test)."""
    order = list(range(len(questions)))
    random.Random(f"dpa-split:{seed}").shuffle(order)
    n_test = round(len(order) * test_share)
    test = [questions[i] for i in order[:n_test]]
    held = {question_key(q.text) for q in test}
    train = [questions[i] for i in order[n_test:] if question_key(questions[i].text) not in held]
    test += [questions[i] for i in order[n_test:] if question_key(questions[i].text) in held]
    return train, test


def sub_corpus(corpus: Corpus, used: list[Question], n: int, seed: int) -> Corpus:
    """The used questions' gold passages topped up (seeded) to `n` documents; the whole corpus for n=0."""
    if n <= 0 or n >= len(corpus):
        return corpus
    keep = {q.gold_id for q in used}
    rest = [d.id for d in corpus if d.id not in keep]
    random.Random(f"dpa-corpus:{seed}").shuffle(rest)
    keep |= set(rest[: max(0, n - len(keep))])
    return Corpus([d for d in corpus if d.id in keep], name=f"{corpus.name}-{len(keep)}")


def load_examples(path: Path, split_name: str) -> list[dict]:
    rows = read_jsonl(path)
    need = ("query", "classification") if split_name == "train" else ("question", "reference", "before", "after")
    for i, r in enumerate(rows):
        if any(k not in r for k in need):
            raise DataError(f"'{path}' row {i + 1} lacks one of {need} (not a DPA-RAG {split_name} file)")
    return rows
