"""Candidates and reader-preference mining (DPA-RAG §3.1) for any reader.

- `candidates`: BM25 and dense top-k from the retrieval layer, fused by reciprocal rank (the
  fused order is the "retriever order" the reranker is compared with).
- `mine_logprob` (default, ours): one log-likelihood of the gold answer per (question, document)
  plus one closed-book, read through the model layer's shared-prefix scorer (the system turn and
  the question are read once per question); Δ = log p(gold | q, d) − log p(gold | q) gives the
  label with thresholds ±τ (`solstice.retrieval.preferences.logprob_preference`). The closed-book
  answer counts as correct when p(gold | q) ≥ ½ (only splits the neutral class).
- `mine_generate` (the paper's rule): the reader answers closed-book and with each document;
  Hits then F1 decide (`answer_preference`).
- `mine_has_answer`: the zero-cost baseline (document contains a gold answer).

All return, per question, a list of integer `Preference` values in candidate order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from solstice.models.base import CAP_WHITEBOX, GenParams
from solstice.papers.dpa_rag.prompts import reader_prompt
from solstice.retrieval.preferences import (
    answer_preference,
    has_answer_preference,
    logprob_preference,
)

LOG_HALF = math.log(0.5)


def candidates(corpus, queries: Sequence[str], *, k: int, n: int, encoder: Any = "minilm") -> list[list[str]]:
    """Per query, `n` document ids: reciprocal-rank fusion of BM25 and dense top-`k` (retrieval layer)."""
    from solstice.retrieval.fusion import reciprocal_rank_fusion
    from solstice.retrieval.passages import passage_index, search_passages

    k = min(k, len(corpus))
    lists = []
    for backend in ("bm25", "dense"):
        index = passage_index(corpus, backend=backend, encoder=encoder)
        lists.append([[r.doc.id for r in rs] for rs in search_passages(index, corpus, queries, k)])
    return [[d for d, _ in reciprocal_rank_fusion([a, b])][:n] for a, b in zip(*lists)]


def scoring_model(model):
    """The reader wrapped in the model layer's shared-prefix scorer when it is a transformers model
    (all of one question's prompts fall in one group: grouped by their first 8 tokens), else itself."""
    from solstice.models.prefix import SharedPrefixModel

    if CAP_WHITEBOX in model.capabilities and all(hasattr(model, a) for a in ("model", "tokenizer", "encode", "render")):
        return SharedPrefixModel(model, min_prefix=8, group_tokens=8)
    return model


def gold_logprobs(scorer, question: str, gold: str, docs: Sequence[str]) -> tuple[float, list[float]]:
    """(log p(gold | q), [log p(gold | q, d) for d in docs]) in one call per question."""
    prompts = [reader_prompt(question)] + [reader_prompt(question, [d]) for d in docs]
    lps = [r[gold] for r in scorer.label_logprobs(prompts, [gold])]
    return lps[0], lps[1:]


def mine_logprob(scorer, question: str, answers: Sequence[str], docs: Sequence[str], tau: float) -> dict[str, Any]:
    closed, with_doc = gold_logprobs(scorer, question, answers[0], docs)
    deltas = [lp - closed for lp in with_doc]
    right = closed >= LOG_HALF
    return {"closed_logprob": closed, "deltas": deltas,
            "labels": [int(logprob_preference(d, tau, correct_before=right)) for d in deltas]}


def mine_generate(model, question: str, answers: Sequence[str], docs: Sequence[str], max_new_tokens: int,
                  ) -> dict[str, Any]:
    prompts = [reader_prompt(question)] + [reader_prompt(question, [d]) for d in docs]
    outs = model.generate_text(prompts, GenParams(max_new_tokens=max_new_tokens, temperature=0.0))
    before, after = outs[0], outs[1:]
    return {"before": before, "after": after,
            "labels": [int(answer_preference(before, a, answers)) for a in after]}


def mine_has_answer(answers: Sequence[str], docs: Sequence[str]) -> list[int]:
    return [int(has_answer_preference(d, list(answers))) for d in docs]
