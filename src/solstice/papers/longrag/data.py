"""LongRAG's data: the HotpotQA paragraph union (corpus + questions), SQuAD articles (same-source
grouping), the official reader outputs (metric parity), and user corpora / question files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.data import DataSource
from solstice.data.catalogue import HOTPOT_IRCOT, SQUAD24  # noqa: F401  (shared files, read as D.<name>)
from solstice.data.io import read_json, read_jsonl
from solstice.errors import DataError
from solstice.retrieval.documents import Corpus, Document

_RAW = "https://raw.githubusercontent.com/TIGER-AI-Lab/LongRAG"
HOTPOT_AMOR = DataSource(
    "hotpotqa-amor", "hotpotqa/hotpotqa_dev_500_original_format_amor.jsonl",
    sha256="d2d566c667d789508aa3511d89cfcc3480fc9d62e556a09331be9376be42c075", license="CC BY-SA 4.0 (no licence file)",
    description="500 HotpotQA dev questions in the original format (AMOR copy)")
READER_OUTPUTS = {
    "nq_gpt4o": DataSource(
        "longrag-nq-gpt4o", "longrag-reader-outputs/nq_gpt4o_100.jsonl",
        url=f"{_RAW}/ee408c0f67b04edf95cb3a8d0ce1479a8fcffe45/exp/nq_gpt4o_100.json",
        sha256="581b056b8b2a627f98ab93b8ebbf16280e139035080d050c3fd041ff8da9b678", license="MIT"),
    "nq_gemini": DataSource(
        "longrag-nq-gemini", "longrag-reader-outputs/nq_gemini_100.jsonl",
        url=f"{_RAW}/ef3af5d90b1bfc6da704381e88224ba2d92f00fd/exp/nq_gemini_100.json",
        sha256="37df9c44561a389f30bea1ca773ae2b9d374f9b34ada2798f832c7b94bee245b", license="MIT"),
    "nq_claude": DataSource(
        "longrag-nq-claude", "longrag-reader-outputs/nq_claude_3.5_sonnet.jsonl",
        url=f"{_RAW}/9a8a08df941f1102b832f72cfc608681d64e68d4/exp/nq_claude_3.5_sonnet.json",
        sha256="dcc5f519e348747a2da71ea31411615ca0f8e9c8bac0f6917679d099ff2c5fbf", license="MIT"),
    "hotpotqa_gpt4o": DataSource(
        "longrag-hotpotqa-gpt4o", "longrag-reader-outputs/hotpotqa_gpt4o_100.jsonl",
        url=f"{_RAW}/b11a0dadccdb9f77467e386f8d5ee22d24b41491/exp/hotpotqa_gpt4o_100.json",
        sha256="0ebe52c2bdac0e1675c91743372ef40689e1e036c3793339772c319faa977db6", license="MIT"),
}


@dataclass(frozen=True)
class Question:
    """An open-domain question: gold answers, and the titles (or ids) of its supporting documents."""

    id: str
    text: str
    answers: tuple[str, ...]
    supporting: tuple[str, ...] = ()
    kind: str = ""
    origin: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _clean(text: str) -> str:
    return " ".join(text.split())


def hotpot_corpus_and_questions(ircot: Path, amor: Path | None) -> tuple[Corpus, list[Question]]:
    """The union of the paragraphs of both HotpotQA files (one document per title; the IRCoT text
    wins for the 12 titles whose two copies differ in spacing) and the questions whose supporting
    paragraphs are all in it: the 500 IRCoT questions, then AMOR questions not among them."""
    docs: dict[str, Document] = {}
    questions: list[Question] = []
    for r in read_jsonl(ircot):
        for c in r["contexts"]:
            t = c["title"]
            if t not in docs:
                docs[t] = Document(id=t, title=t, text=_clean(c["paragraph_text"]))
        spans = [s for a in r["answers_objects"] for s in a.get("spans", []) if s]
        sup = tuple(sorted({c["title"] for c in r["contexts"] if c.get("is_supporting")}))
        questions.append(Question(str(r["question_id"]), r["question_text"], tuple(spans), sup, origin="ircot"))
    seen = {q.id for q in questions}
    if amor is not None:
        amor_rows = read_jsonl(amor)
        for r in amor_rows:
            for t, sents in r["context"]:
                if t not in docs:
                    docs[t] = Document(id=t, title=t, text=_clean("".join(sents)))
        for r in amor_rows:
            sup = tuple(sorted({t for t, _ in r["supporting_facts"]}))
            if str(r["_id"]) in seen or not sup or not all(t in docs for t in sup):
                continue
            questions.append(Question(str(r["_id"]), r["question"], (r["answer"],), sup, r.get("type", ""), "amor"))
    corpus = Corpus(sorted(docs.values(), key=lambda d: d.id), name="hotpotqa-union")
    return corpus, questions


def squad_corpus_and_questions(path: Path) -> tuple[Corpus, list[Question]]:
    """One document per SQuAD paragraph (source = article, position = paragraph number); the
    questions' supporting document is their paragraph."""
    data = read_json(path)
    if not isinstance(data, dict) or "data" not in data:
        raise DataError(f"{path.name} is not a SQuAD v1.1 file (no 'data' list)")
    docs, questions = [], []
    for art in data["data"]:
        title = art["title"].replace("_", " ")
        for j, p in enumerate(art["paragraphs"]):
            did = f"{art['title']}#{j:03d}"
            docs.append(Document(id=did, title=title, text=_clean(p["context"]), source=art["title"], position=j))
            for qa in p["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(Question(str(qa["id"]), qa["question"], answers, (did,), origin="squad"))
    return Corpus(docs, name="squad-24"), questions


def load_reader_outputs(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    need = {"answers", "long_ans", "short_ans", "is_exact_match", "is_substring_match"}
    for i, r in enumerate(rows):
        if not need <= set(r):
            raise DataError(f"{path.name}: row {i + 1} lacks {', '.join(sorted(need - set(r)))}")
    return rows


def custom_questions(path: Path) -> list[Question]:
    """Questions from JSONL: `question` (or `query`), `answers` (list or string), optional `id`
    and `supporting` (titles or document ids)."""
    out = []
    for i, r in enumerate(read_jsonl(path)):
        text = r.get("question", r.get("query"))
        if not text:
            raise DataError(f"{path.name}: row {i + 1} has no 'question'")
        ans = r.get("answers", r.get("answer", []))
        ans = [ans] if isinstance(ans, str) else list(ans)
        sup = r.get("supporting", r.get("supporting_titles", []))
        sup = [sup] if isinstance(sup, str) else list(sup)
        out.append(Question(str(r.get("id", r.get("query_id", i))), text, tuple(map(str, ans)), tuple(map(str, sup)),
                            origin="custom"))
    if not out:
        raise DataError(f"{path.name} holds no questions")
    return out


def resolve_supporting(corpus: Corpus, questions: Sequence[Question]) -> list[Question]:
    """Map supporting titles to document ids (ids are kept as they are)."""
    by_title: dict[str, str] = {}
    for d in corpus:
        by_title.setdefault(d.title, d.id)
    out = []
    for q in questions:
        ids = tuple(s if s in corpus else by_title.get(s, s) for s in q.supporting)
        out.append(Question(q.id, q.text, q.answers, ids, q.kind, q.origin, q.metadata))
    return out
