"""The DPA-RAG inference stage on its own: rerank retrieved documents with a trained preference
reranker, then let any reader answer from the top-k.

    from solstice.training.reranker import load_reranker
    from solstice.papers.dpa_rag.pipeline import rerank_documents, rerank_then_read
    ce = load_reranker("runs/<run>/artifacts/reranker_reader")   # any CrossEncoder folder or id
    top = rerank_documents(question, docs, ce, top_k=3)          # [(index, score)], best first
    answer = rerank_then_read(reader, question, docs, ce, top_k=3)

`docs` are plain strings (title and text as the reader should read them); `reader` is any model of
the model layer (`solstice.models.load_model("openai:<model>@<url>")`, `hf:...`, `default`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solstice.models.base import GenParams
from solstice.papers.dpa_rag.prompts import reader_prompt


def rerank_documents(question: str, documents: Sequence[str], reranker: Any, *, top_k: int | None = None,
                     batch_size: int = 32) -> list[tuple[int, float]]:
    """(index into `documents`, score) by descending reranker score, ties in retriever order."""
    from solstice.training.reranker import rerank

    return rerank(question, documents, reranker, top_k=top_k, batch_size=batch_size)


def rerank_then_read(reader: Any, question: str, documents: Sequence[str], reranker: Any, *, top_k: int = 3,
                     max_new_tokens: int = 32) -> str:
    """The reader's greedy answer given the reranker's top-k documents, best first (paper: top-3)."""
    top = rerank_documents(question, documents, reranker, top_k=top_k)
    prompt = reader_prompt(question, [documents[i] for i, _ in top])
    return reader.generate_text([prompt], GenParams(max_new_tokens=max_new_tokens, temperature=0.0))[0]
