"""Retrieval and open-domain QA metrics.

Answer matching follows DPR: text and answers are Unicode-NFD-normalised, split into tokens by
`[\\p{L}\\p{N}\\p{M}]+|[^\\p{Z}\\p{C}]`, lower-cased, and an answer is found when its token list
occurs contiguously in the text's (`has_answer`). On top of it:

    em_strict(pred, golds)        SQuAD exact match after NFD (max over golds)
    em_longrag(pred, golds)       LongRAG's lenient "EM": a gold inside the prediction, or the
                                  (non-empty) prediction inside a gold, on DPR tokens
    substring_match(text, golds)  has_answer(text, golds) — LongRAG's `is_substring_match`
    token_f1(pred, golds)         SQuAD bag-of-tokens F1 (max over golds)
Ranking metrics take a ranked list of ids and the relevant ids: recall_at_k, all_found_at_k,
reciprocal_rank, ndcg_at_k; budgeted variants cut the ranking at a token budget (`budget_cutoff`).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from solstice.metrics.text import best_f1, normalize_answer

_DPR_PATTERN = r"[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]"


@lru_cache(maxsize=1)
def _dpr_regex():
    import regex

    return regex.compile(_DPR_PATTERN, flags=regex.IGNORECASE | regex.UNICODE | regex.MULTILINE)


def dpr_tokens(text: str) -> list[str]:
    """DPR's SimpleTokenizer words, uncased, after NFD normalisation."""
    return [t.lower() for t in _dpr_regex().findall(unicodedata.normalize("NFD", text or ""))]


def _contains(hay: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(hay):
        return False
    first = needle[0]
    for i in range(len(hay) - n + 1):
        if hay[i] == first and list(hay[i:i + n]) == list(needle):
            return True
    return False


def has_answer(text: str, answers: Iterable[str] | str) -> bool:
    """True when some answer's DPR tokens occur contiguously in the text's (empty answers never match)."""
    if isinstance(answers, str):
        answers = [answers]
    return answer_matcher(answers)(token_string(text))


def token_string(text: str) -> str:
    """The text's DPR tokens joined by single spaces and padded with spaces. DPR tokens never hold
    whitespace, so a token list occurs contiguously in another exactly when its token string occurs
    in the other's: precompute this once per document to test many answers fast."""
    return " " + " ".join(dpr_tokens(text)) + " "


def answer_matcher(answers: Iterable[str]):
    """A function `token_string -> bool` that tests the answers against a precomputed token string."""
    needles = [" " + " ".join(t) + " " for t in (dpr_tokens(a) for a in answers) if t]
    return lambda hay: any(n in hay for n in needles)


def substring_match(long_answer: str, answers: Iterable[str]) -> bool:
    """LongRAG's `is_substring_match`: some gold occurs in the (long) answer, on DPR tokens."""
    return has_answer(long_answer, answers)


def em_longrag(prediction: str, answers: Iterable[str]) -> bool:
    """LongRAG's lenient "exact match": some gold's tokens occur in the prediction's, or the
    prediction's (non-empty) tokens occur in some gold's. An empty prediction scores 0."""
    p = dpr_tokens(prediction)
    if not p:
        return False
    for a in answers:
        g = dpr_tokens(a)
        if _contains(p, g) or _contains(g, p):
            return True
    return False


def em_strict(prediction: str, answers: Iterable[str]) -> bool:
    """SQuAD exact match (lower-case, no punctuation or articles, single spaces) after NFD."""
    p = normalize_answer(unicodedata.normalize("NFD", prediction or ""))
    return any(p == normalize_answer(unicodedata.normalize("NFD", a)) for a in answers)


def token_f1(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD token F1, the best over the answers."""
    return best_f1(prediction or "", list(answers))


# -- ranking ------------------------------------------------------------------------------------
def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int | None = None) -> float:
    """Fraction of the relevant ids among the first k ranked ids (NaN with no relevant ids)."""
    rel = set(relevant)
    if not rel:
        return math.nan
    top = set(ranked[:k] if k is not None else ranked)
    return len(rel & top) / len(rel)


def all_found_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int | None = None) -> bool:
    """Whether every relevant id is among the first k (HotpotQA: both supporting documents)."""
    rel = set(relevant)
    top = set(ranked[:k] if k is not None else ranked)
    return bool(rel) and rel <= top


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    rel = set(relevant)
    for i, x in enumerate(ranked):
        if x in rel:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, float] | Iterable[str], k: int) -> float:
    """nDCG@k with graded (mapping) or binary (iterable) relevance; NaN when nothing is relevant."""
    gains = dict(relevance) if isinstance(relevance, Mapping) else {x: 1.0 for x in relevance}
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return math.nan
    dcg = sum(gains.get(x, 0.0) / math.log2(i + 2) for i, x in enumerate(ranked[:k]))
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg


def budget_cutoff(sizes: Sequence[int], budget: int) -> int:
    """How many ranked items fit in `budget` tokens, taking them in order and stopping at the first
    that does not fit; the first item always counts (a reader truncates it)."""
    total = 0
    for i, n in enumerate(sizes):
        if i and total + n > budget:
            return i
        total += n
        if total > budget:
            return i + 1
    return len(sizes)


def answer_recall(texts: Sequence[str], answers: Iterable[str], k: int | None = None) -> bool:
    """Whether some answer occurs in the concatenation of the first k texts (DPR answer recall)."""
    answers = list(answers)
    return has_answer("\n".join(texts[:k] if k is not None else texts), answers)


def qa_scores(prediction: str, answers: Sequence[str], long_answer: str | None = None) -> dict[str, float]:
    """em_strict, em_longrag, token_f1 of a (short) prediction and substring_match of the long
    answer (the prediction when no long answer is given), as 0/1 floats."""
    return {
        "em_strict": float(em_strict(prediction, answers)),
        "em_longrag": float(em_longrag(prediction, answers)),
        "f1": token_f1(prediction, answers),
        "substring_match": float(substring_match(long_answer if long_answer is not None else prediction, answers)),
    }
