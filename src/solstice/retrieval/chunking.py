"""Chunking units into encoder-sized pieces for MaxP scoring, and splitting long texts.

Modes of `chunk_units`:
    window     consecutive windows of at most `max_tokens` tokens over the unit's whole text (the
               paper: a long unit is split into ~512-token pieces regardless of document borders)
    document   one chunk per member document (split further when a document is longer)
    packed     whole member documents packed greedily into chunks of at most `max_tokens`
               (a document longer than that is split on its own)
Windows end at a word boundary when one lies within the last `BACKOFF` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solstice.errors import ConfigError
from solstice.models.tokens import TokenCounter, get_counter
from solstice.retrieval.documents import Unit

BACKOFF = 32
MODES = ("window", "document", "packed")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a unit's text: characters `start:end` of unit `unit`, `n_tokens` long."""

    unit: int  # position of the unit in the index
    start: int
    end: int
    n_tokens: int


def split_spans(
    text: str, max_tokens: int, counter: TokenCounter | str = "minilm", *, overlap: int = 0,
    offset: int = 0, spans: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[int, int, int]]:
    """Split `text` into (start, end, n_tokens) windows of at most `max_tokens` tokens.

    Consecutive windows share `overlap` tokens. Character offsets are shifted by `offset`.
    A text with no tokens yields one empty-count window over the whole text.
    """
    if max_tokens < 1:
        raise ConfigError(f"chunk size must be at least 1 token, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ConfigError(f"chunk overlap must be in [0, {max_tokens}), got {overlap}")
    toks = list(spans) if spans is not None else get_counter(counter).spans(text)
    n = len(toks)
    if n == 0:
        return [(offset, offset + len(text), 0)]
    if n <= max_tokens:
        return [(offset, offset + len(text), n)]
    out = []
    i = 0
    while i < n:
        j = min(n, i + max_tokens)
        if j < n:
            # back off to a word boundary (a gap between token j-1 and token j)
            k = j
            while k > i + 1 and j - k < BACKOFF and toks[k][0] <= toks[k - 1][1]:
                k -= 1
            if k > i + 1 and toks[k][0] > toks[k - 1][1]:
                j = k
        start = 0 if i == 0 else toks[i][0]
        end = len(text) if j == n else toks[j - 1][1]
        out.append((offset + start, offset + end, j - i))
        if j == n:
            break
        i = max(i + 1, j - overlap)
    return out


def chunk_units(
    units: Sequence[Unit], max_tokens: int, counter: TokenCounter | str = "minilm", *,
    mode: str = "window", overlap: int = 0,
) -> list[Chunk]:
    """Chunks of every unit, in unit order (the chunks of one unit are contiguous)."""
    if mode not in MODES:
        raise ConfigError(f"unknown chunking mode '{mode}'; use one of {', '.join(MODES)}")
    c = get_counter(counter)
    out: list[Chunk] = []
    for ui, u in enumerate(units):
        if mode == "window" or not u.doc_spans:
            for s, e, n in split_spans(u.text, max_tokens, c, overlap=overlap):
                out.append(Chunk(ui, s, e, n))
            continue
        pieces: list[tuple[int, int, int]] = []
        for s, e in u.doc_spans:
            pieces += split_spans(u.text[s:e], max_tokens, c, overlap=overlap, offset=s)
        if mode == "document":
            out += [Chunk(ui, s, e, n) for s, e, n in pieces]
            continue
        cur: list[tuple[int, int, int]] = []
        for p in pieces:  # packed: greedily join whole pieces while they fit
            if cur and sum(x[2] for x in cur) + p[2] > max_tokens:
                out.append(_join(ui, u.text, cur, c))
                cur = []
            cur.append(p)
        if cur:
            out.append(_join(ui, u.text, cur, c))
    return out


def _join(ui: int, text: str, pieces: list[tuple[int, int, int]], counter: TokenCounter) -> Chunk:
    s, e = pieces[0][0], pieces[-1][1]
    n = pieces[0][2] if len(pieces) == 1 else counter.count(text[s:e])
    return Chunk(ui, s, e, n)


def chunk_texts(units: Sequence[Unit], chunks: Sequence[Chunk]) -> list[str]:
    return [units[c.unit].text[c.start:c.end] for c in chunks]
