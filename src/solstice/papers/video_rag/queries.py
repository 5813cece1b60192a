"""Multi-query generation (paper §3: an LLM turns a request into ≥ 5 keyword queries of ≈ 5 keywords).

`QueryGenerator` prompts any model of the model layer and parses its output defensively: numbered or
bulleted lines, quotes, prose preambles and over-long lines are handled; queries are lower-cased,
capped at `keywords_per_query` words and de-duplicated. A weak model's prose is not trusted: the raw
request is always fused by the retriever. `fallback_queries` is the model-free arm: the request plus
queries built from its highest-IDF content words (IDF from the library itself).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from solstice.models.base import GenParams, Model

QUERY_PROMPT = (
    "You write search queries for a text search engine over video transcripts.\n"
    "Request: {request}\n"
    "Write {n} different search queries of about {kw} keywords each that would find the video moments "
    "answering the request. One query per line, keywords only, no numbering, no explanations."
)

_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|q\d+[:.)]|query\s*\d*\s*[:.)-])\s*", re.I)
_PREAMBLE = re.compile(r"^(?:here (?:are|is)|sure|certainly|okay|the following|these are)\b.*:\s*$", re.I)
_WORD = re.compile(r"[^\W_][\w'-]*", re.U)


def parse_queries(text: str, *, n: int = 5, keywords_per_query: int = 5, max_queries: int = 10) -> list[str]:
    """Keyword queries from a model's output: one per line, cleaned; at most `max_queries`."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip().strip("\"'`")
        if not line or _PREAMBLE.match(line):
            continue
        line = _BULLET.sub("", line)
        line = re.sub(r"[\"“”`]", " ", line)
        words = _WORD.findall(line.lower())
        if not words:
            continue
        q = " ".join(words[: max(keywords_per_query * 2, keywords_per_query)])
        if q not in seen:
            seen.add(q)
            out.append(q)
        if len(out) >= max_queries:
            break
    return out


class QueryGenerator:
    """Keyword queries for requests through any model (batched)."""

    def __init__(self, model: Model, *, n_queries: int = 5, keywords_per_query: int = 5,
                 max_new_tokens: int = 80) -> None:
        self.model, self.n, self.kw, self.max_new_tokens = model, n_queries, keywords_per_query, max_new_tokens

    def prompts(self, requests: Sequence[str]) -> list[str]:
        return [QUERY_PROMPT.format(request=r, n=self.n, kw=self.kw) for r in requests]

    def __call__(self, requests: Sequence[str]) -> list[tuple[list[str], str]]:
        """(queries, raw output) per request."""
        chats = [[{"role": "user", "content": p}] for p in self.prompts(requests)]
        outs = self.model.generate(chats, GenParams(max_new_tokens=self.max_new_tokens, temperature=0.0))
        return [(parse_queries(o[0].text, n=self.n, keywords_per_query=self.kw), o[0].text) for o in outs]


def fallback_queries(request: str, idf: dict[str, float], *, n_queries: int = 5,
                     keywords_per_query: int = 5) -> list[str]:
    """Model-free queries: the content words of the request ranked by library IDF, in sliding
    groups of `keywords_per_query` (the first group = the rarest words)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(request)))
    scored = sorted((w for w in words if w in idf), key=lambda w: (-idf[w], words.index(w)))
    if not scored:
        return []
    out = []
    for i in range(n_queries):
        group = scored[i: i + keywords_per_query]
        if len(group) == 0:
            break
        q = " ".join(group)
        if q not in out:
            out.append(q)
    return out


def library_idf(index, words: Sequence[str]) -> dict[str, float]:
    """Lucene IDF of each word (after the index's own tokenizer) in a SegmentedBM25 index; words that
    are stop words or absent from the library are left out."""
    out = {}
    for w in words:
        ids = index.query_ids(w)
        if ids.size:
            out[w] = float(np.max(index.idf(ids)))
    return out
