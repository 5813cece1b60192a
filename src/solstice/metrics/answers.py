"""Short-answer matching for open-domain QA readers, with the normaliser variants RAG papers use.

The SQuAD normaliser (`metrics.text.normalize_answer`) deletes punctuation; many RAG evaluations
(e.g. Base-vs-Instruct RAG, 2406.14972) replace it by a space instead, then lower-case, remove the
articles a/an/the and collapse whitespace, and call a prediction correct when a normalised gold
answer is a *substring* of the normalised prediction. That is lenient: "1" matches "1972", a long
rambling output matches by chance, and a gold answer that normalises to "" matches everything. So
the functions here skip empty normalised answers by default (`usable_answers` says which are
left) and the token-boundary and exact variants are provided to be reported beside it.

    normalize(s, punctuation="space"|"delete", unicode_form="NFD"|None, lowercase=True)
    usable_answers(golds)                 golds whose normalised form is not empty
    substring_match(pred, golds)          some normalised gold is a substring of the normalised prediction
    token_contains(pred, golds)           ... occurs on token boundaries ("1" does not match "1972")
    exact_match(pred, golds)              normalised equality
    answer_in_text(text, golds)           the gold occurs in a passage (the same normaliser on both sides)
    first_line(text)                      the prediction a reader's first line gives (explicit truncation)
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT_TABLE_SPACE = str.maketrans({c: " " for c in string.punctuation})
_PUNCT_TABLE_DELETE = str.maketrans({c: None for c in string.punctuation})
PUNCTUATION = ("space", "delete")


def normalize(s: str, *, punctuation: str = "space", unicode_form: str | None = "NFD", lowercase: bool = True) -> str:
    """Lower-case, Unicode-normalise, ASCII punctuation to a space (or deleted), drop articles, collapse spaces."""
    if punctuation not in PUNCTUATION:
        raise ValueError(f"punctuation must be one of {PUNCTUATION}, got '{punctuation}'")
    s = s or ""
    if lowercase:
        s = s.lower()
    if unicode_form:
        s = unicodedata.normalize(unicode_form, s)
    s = s.translate(_PUNCT_TABLE_SPACE if punctuation == "space" else _PUNCT_TABLE_DELETE)
    return " ".join(_ARTICLES.sub(" ", s).split())


def usable_answers(answers: Iterable[str], **norm_kw) -> list[str]:
    """The gold answers whose normalised form is not empty (an empty one would match anything)."""
    return [a for a in answers if normalize(a, **norm_kw)]


def _golds(answers: Iterable[str], guard_empty: bool, norm_kw: dict) -> list[str]:
    gs = [normalize(a, **norm_kw) for a in answers]
    return [g for g in gs if g] if guard_empty else gs


def substring_match(prediction: str, answers: Iterable[str], *, guard_empty: bool = True, **norm_kw) -> bool:
    """Some normalised gold answer is a substring of the normalised prediction.
    `guard_empty=False` reproduces the unguarded metric (an empty normalised gold matches everything)."""
    p = normalize(prediction, **norm_kw)
    return any(g in p for g in _golds(answers, guard_empty, norm_kw))


def token_contains(prediction: str, answers: Iterable[str], **norm_kw) -> bool:
    """Some (non-empty) normalised gold occurs in the normalised prediction on token boundaries."""
    p = f" {normalize(prediction, **norm_kw)} "
    return any(f" {g} " in p for g in _golds(answers, True, norm_kw))


def exact_match(prediction: str, answers: Iterable[str], **norm_kw) -> bool:
    """The normalised prediction equals some non-empty normalised gold."""
    p = normalize(prediction, **norm_kw)
    return any(p == g for g in _golds(answers, True, norm_kw))


def answer_in_text(text: str, answers: Iterable[str], *, how: str = "normalized", **norm_kw) -> bool:
    """Whether a gold answer occurs in a passage.

    how="normalized": the normaliser on both sides, substring (empty golds skipped);
    how="token": on token boundaries; how="raw": case-sensitive raw substring."""
    if how == "raw":
        return any(a and a in text for a in answers)
    if how == "token":
        return token_contains(text, answers, **norm_kw)
    if how != "normalized":
        raise ValueError(f"how must be normalized, token or raw, got '{how}'")
    return substring_match(text, answers, **norm_kw)


def first_line(text: str) -> str:
    """The text up to its first line break, stripped (readers tend to ramble after it)."""
    return (text or "").strip().split("\n", 1)[0].strip()


def n_words(text: str) -> int:
    return len((text or "").split())


def match_flags(prediction: str, answers: Sequence[str]) -> dict[str, bool]:
    """The usual set of flags for one prediction: substring (guarded and not), token-boundary, exact."""
    return {
        "substring": substring_match(prediction, answers),
        "substring_unguarded": substring_match(prediction, answers, guard_empty=False),
        "token_contains": token_contains(prediction, answers),
        "exact": exact_match(prediction, answers),
    }
