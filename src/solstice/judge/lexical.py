"""Lexical correctness judges: exact match and containment against a list of references.

These are the baselines of "Judging the Judges" (arXiv:2406.12624, §3): **EM** counts an answer
correct when it equals one of the references, **Contains** when one of the references occurs in it
(substring), **ContainsWords** when every word of one reference occurs among the answer's words.
All are case-insensitive by default (`cased=True` restores case), and `normalize=True` applies
SQuAD normalisation (punctuation, articles, whitespace) first. They return `Verdict`s like the
LLM judges, so every judge goes through the same agreement code; they never fail to parse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from solstice.judge.base import Verdict
from solstice.metrics.text import normalize_answer


def as_references(refs: str | Iterable[str]) -> list[str]:
    """References as a list: a newline-joined string is split into lines; blanks are dropped."""
    items = refs.split("\n") if isinstance(refs, str) else list(refs)
    return [r for r in (x.strip() for x in items) if r]


def _prep(text: str, cased: bool, normalize: bool) -> str:
    if normalize:
        return normalize_answer(text)
    return text.strip() if cased else text.strip().lower()


def exact_match(answer: str, references: str | Iterable[str], *, cased: bool = False, normalize: bool = False) -> bool:
    a = _prep(answer, cased, normalize)
    return any(a == _prep(r, cased, normalize) for r in as_references(references))


def contains(answer: str, references: str | Iterable[str], *, cased: bool = False, normalize: bool = False) -> bool:
    a = _prep(answer, cased, normalize)
    return any((r := _prep(ref, cased, normalize)) and r in a for ref in as_references(references))


def contains_words(answer: str, references: str | Iterable[str], *, cased: bool = False, normalize: bool = False) -> bool:
    words = set(_prep(answer, cased, normalize).split())
    return any(
        (ws := _prep(ref, cased, normalize).split()) and all(w in words for w in ws)
        for ref in as_references(references)
    )


_RULES = {"em": exact_match, "contains": contains, "contains_words": contains_words}


class LexicalJudge:
    """A judge with the same `judge(items) -> list[Verdict]` shape as the LLM judges; items are
    mappings with `response` and `references` (a list, or a newline-joined string)."""

    def __init__(self, rule: str = "contains", *, cased: bool = False, normalize: bool = False) -> None:
        if rule not in _RULES:
            raise ValueError(f"unknown lexical rule '{rule}' (choose from {', '.join(_RULES)})")
        self.rule = rule
        self.fn = _RULES[rule]
        self.cased = cased
        self.normalize = normalize

    @property
    def name(self) -> str:
        return self.rule

    def judge(self, items: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        out = []
        for it in items:
            ok = self.fn(str(it["response"]), it["references"], cased=self.cased, normalize=self.normalize)
            out.append(Verdict(ok, True, True, "correct" if ok else "incorrect"))
        return out
