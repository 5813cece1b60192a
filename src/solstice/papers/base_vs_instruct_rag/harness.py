"""Model-independent checks: scoring of one reader output, data facts of the NQ test file, and the
degenerate readers of the spec (oracle, always-NO-RES, echo-the-question) run through the same
scoring as the models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from solstice.core.types import MetricValue
from solstice.metrics.answers import answer_in_text, first_line, match_flags, n_words, normalize
from solstice.papers.base_vs_instruct_rag import prompts as P
from solstice.papers.base_vs_instruct_rag.extract import extract, is_rejection


def score(raw: str, answers: Sequence[str], documents: str | None) -> dict[str, Any]:
    """Everything one output is scored on: the extraction, the match flags of the answer line, NO-RES,
    and (with documents) whether a gold answer occurs in them (normalised: the fixed definition;
    raw case-sensitive: reported beside)."""
    ex = extract(raw)
    row: dict[str, Any] = {"raw": raw, **ex.to_json(), **match_flags(ex.answer, answers),
                           "nores": is_rejection(ex.answer), "answer_words": n_words(ex.answer),
                           "first_line": first_line(raw)}
    if documents is not None:
        row["ans_in_docs"] = answer_in_text(documents, answers)
        row["ans_in_docs_raw"] = answer_in_text(documents, answers, how="raw")
    if ex.proof != P.NO_PROOF:
        row["ans_in_proof"] = bool(ex.answer) and normalize(ex.answer) in normalize(ex.proof)
    return row


def oracle_reader(answers: Sequence[str], documents: str, question: str) -> str:
    """Copies the first gold answer that occurs in the documents, else NO-RES."""
    for a in answers:
        if answer_in_text(documents, [a]):
            return a
    return P.NO_RES


READERS: dict[str, Callable[[Sequence[str], str, str], str]] = {
    "oracle": oracle_reader,
    "nores": lambda answers, documents, question: P.NO_RES,
    "echo": lambda answers, documents, question: question,
}


def _fact(k: int, n: int, note: str = "") -> MetricValue:
    return MetricValue(k / n if n else float("nan"), n, None, None, note)


def data_facts(questions: Sequence[Any]) -> dict[str, MetricValue]:
    """Gold answer in the gold passage under each normaliser variant; empty normalised answers."""
    n = len(questions)
    out = {
        "data_gold_in_passage": sum(answer_in_text(q.gold_text, q.answers) for q in questions),
        "data_gold_in_passage_punct_delete": sum(
            answer_in_text(q.gold_text, q.answers, punctuation="delete") for q in questions),
        "data_gold_in_passage_token": sum(answer_in_text(q.gold_text, q.answers, how="token") for q in questions),
        "data_gold_in_passage_raw": sum(answer_in_text(q.gold_text, q.answers, how="raw") for q in questions),
    }
    m = {k: _fact(v, n, f"{v} / {n}") for k, v in out.items()}
    empty = sum(1 for q in questions for a in q.answers if not normalize(a))
    m["data_empty_gold_answers"] = MetricValue(float(empty), n, None, None, "gold answers normalising to '' (skipped)")
    return m


def reader_metrics(name: str, rows: Sequence[dict[str, Any]]) -> dict[str, MetricValue]:
    """Accuracy (guarded, unguarded, token-boundary), rejection and parametric recall as exact counts."""
    n = len(rows)
    absent = [r for r in rows if not r.get("ans_in_docs", False)]
    out = {}
    for flag in ("substring", "substring_unguarded", "token_contains", "exact"):
        k = sum(bool(r[flag]) for r in rows)
        out[f"{name}_{flag}"] = _fact(k, n, f"{k} / {n}")
    k = sum(r["nores"] for r in absent)
    out[f"{name}_negative_rejection"] = _fact(k, len(absent), f"{k} / {len(absent)} answer-absent")
    k = sum(r["substring"] for r in absent)
    out[f"{name}_parametric_recall"] = _fact(k, len(absent), f"{k} / {len(absent)} answer-absent")
    return out


def degenerate_readers(questions: Sequence[Any]) -> dict[str, MetricValue]:
    """The oracle, always-NO-RES and echo readers with the gold passage alone as the documents."""
    out: dict[str, MetricValue] = {}
    for name, fn in READERS.items():
        rows = [score(fn(q.answers, q.gold_text, q.text), q.answers, q.gold_text) for q in questions]
        out |= reader_metrics(f"gold_{name}", rows)
    return out
