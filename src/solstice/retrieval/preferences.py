"""Reader-preference labels for retrieved documents (DPA-RAG's four categories) and the records a
preference reranker trains on.

For a question and one candidate document the reader answers closed-book (`before`) and with the
document (`after`); each answer is scored by Hits (normalised containment of a gold alias) and token
F1. The document is

- ALIGNED (1) when Hits rises, or Hits ties and F1 rises;
- UNALIGNED (2) when Hits falls, or Hits ties and F1 falls;
- otherwise BOTH_CORRECT (3) / BOTH_INCORRECT (4) by the closed-book Hits — neutral, no signal.

Values 1 and 2 are those of the released DPA-RAG rows (`category`). `has_answer_preference` is the
zero-cost baseline (aligned iff the document contains an answer, DPR-style), `logprob_preference`
the cheap scorer's rule on Δ = log p(gold | q, d) − log p(gold | q). `preference_records` turns one
question's labelled candidates into training records in the released reranker schema
(`query, classification{text,label}, rank_list, positive, negative`), with the ranked list built
from the labels (aligned > neutral > unaligned, ties by retriever rank).

Pure functions, no model; every random choice takes a seed.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from typing import Any

from solstice.errors import ConfigError
from solstice.metrics.retrieval import has_answer
from solstice.metrics.text import best_f1, contains_any


class Preference(enum.IntEnum):
    ALIGNED = 1
    UNALIGNED = 2
    BOTH_CORRECT = 3
    BOTH_INCORRECT = 4

    @property
    def is_signal(self) -> bool:
        return self in (Preference.ALIGNED, Preference.UNALIGNED)

    @property
    def gain(self) -> int:
        """Graded relevance for ranking metrics: aligned 2, both-correct 1, else 0."""
        return {Preference.ALIGNED: 2, Preference.BOTH_CORRECT: 1}.get(self, 0)


def answer_scores(prediction: str, references: Iterable[str]) -> tuple[int, float]:
    """(Hits, F1) of one answer: Hits = some normalised alias is a substring of the normalised
    prediction (the released `em`), F1 = SQuAD token F1, max over aliases."""
    refs = list(references)
    return int(contains_any(prediction, refs)), float(best_f1(prediction, refs))


def preference(em_before: float, f1_before: float, em_after: float, f1_after: float) -> Preference:
    """The four-way rule from closed-book and with-document scores (see the module docstring)."""
    if em_after > em_before or (em_after == em_before and f1_after > f1_before):
        return Preference.ALIGNED
    if em_after < em_before or (em_after == em_before and f1_after < f1_before):
        return Preference.UNALIGNED
    return Preference.BOTH_CORRECT if em_before > 0 else Preference.BOTH_INCORRECT


def answer_preference(before: str, after: str, references: Iterable[str]) -> Preference:
    """Label one document from the reader's closed-book and with-document answers."""
    refs = list(references)
    eb, fb = answer_scores(before, refs)
    ea, fa = answer_scores(after, refs)
    return preference(eb, fb, ea, fa)


def logprob_preference(delta: float, tau: float, *, correct_before: bool = False) -> Preference:
    """Cheap rule on Δ = log p(gold | q, d) − log p(gold | q): aligned when Δ > τ, unaligned when
    Δ < −τ, else neutral (both-correct when the closed-book answer was already right)."""
    if tau < 0:
        raise ConfigError(f"tau must be ≥ 0, got {tau}")
    if delta > tau:
        return Preference.ALIGNED
    if delta < -tau:
        return Preference.UNALIGNED
    return Preference.BOTH_CORRECT if correct_before else Preference.BOTH_INCORRECT


def has_answer_preference(document: str, answers: Iterable[str] | str) -> Preference:
    """Zero-cost baseline: aligned iff the document contains a gold answer (DPR tokenisation)."""
    return Preference.ALIGNED if has_answer(document, answers) else Preference.UNALIGNED


def order_by_preference(prefs: Sequence[Preference]) -> list[int]:
    """Candidate indices best → worst: by graded gain (aligned, both-correct, the rest), then
    neutral-incorrect above unaligned, ties kept in retriever order (stable)."""
    key = {
        Preference.ALIGNED: 0,
        Preference.BOTH_CORRECT: 1,
        Preference.BOTH_INCORRECT: 2,
        Preference.UNALIGNED: 3,
    }
    return sorted(range(len(prefs)), key=lambda i: key[Preference(prefs[i])])


def preference_records(
    query: str,
    documents: Sequence[str],
    prefs: Sequence[Preference],
    *,
    list_size: int = 4,
    n_pos: int = 2,
    n_neg: int = 2,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Training records for one question, one per signal-carrying document, in the released schema.

    `classification.label` is 1 (aligned) or 2 (unaligned). `rank_list` holds `list_size` documents
    best → worst drawn (seeded) from the candidates so that it spans the preference order;
    `positive`/`negative` hold `n_pos` aligned / `n_neg` unaligned documents (sampled with
    replacement when fewer exist) and are empty when the question lacks either kind — such records
    carry the point-wise task only. `rank_list` is empty when fewer than `list_size` candidates
    exist."""
    if len(documents) != len(prefs):
        raise ConfigError(f"{len(documents)} documents but {len(prefs)} labels")
    prefs = [Preference(p) for p in prefs]
    rng = random.Random(f"{seed}:{query}")
    order = order_by_preference(prefs)
    pos = [documents[i] for i in order if prefs[i] is Preference.ALIGNED]
    neg = [documents[i] for i in order if prefs[i] is Preference.UNALIGNED]
    out = []
    for i, p in enumerate(prefs):
        if not p.is_signal:
            continue
        ranked: list[str] = []
        if len(documents) >= list_size:
            picks = sorted(rng.sample(range(len(order)), list_size))
            ranked = [documents[order[j]] for j in picks]
        both = bool(pos) and bool(neg)
        out.append(
            {
                "query": query,
                "classification": {"text": documents[i], "label": int(p)},
                "rank_list": ranked,
                "positive": [rng.choice(pos) for _ in range(n_pos)] if both else [],
                "negative": [rng.choice(neg) for _ in range(n_neg)] if both else [],
            }
        )
    return out
