"""Grounded answers: numbered moments in the prompt, answers citing `[video_id start–end]`, and a
validator that checks every citation against the retrieved moments (paper §3; the validator is
ours and required — models invent timestamps).

Statuses: `valid` (overlaps a retrieved moment of the same video), `snapped` (no overlap but within
`snap_seconds` of one: clipped to that moment's bounds), `invalid` (unknown video, or farther away).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from solstice.models.tokens import TokenCounter, truncate_tokens
from solstice.papers.video_rag.library import Moment
from solstice.papers.video_rag.timecode import format_span, format_timestamp, gap, parse_timestamp

ANSWER_PROMPT = (
    "Answer the request using only the video moments below. Cite every statement with the moment it "
    "comes from, written exactly as [video_id start–end], e.g. {example}. If no moment answers the "
    "request, say that the library has no answer.\n\n{moments}\n\nRequest: {request}\nAnswer:"
)

_TS = r"\d{1,2}(?::\d{2}){1,2}(?:[.,]\d{1,3})?"
CITATION = re.compile(
    rf"\[\s*(?:video\s*[:=]?\s*)?(?P<vid>[^\[\]\s,;]+?)\s*[,;@]?\s*(?:at\s+)?(?P<start>{_TS})\s*"
    rf"(?:[–—-]+|to|-->)\s*(?P<end>{_TS})\s*\]", re.I)


@dataclass(frozen=True)
class Citation:
    video_id: str
    start: float
    end: float
    status: str  # valid | snapped | invalid
    moment_id: str = ""
    text: str = ""  # as written by the model

    def link(self) -> str:
        return f"{self.video_id}#t={self.start:g},{self.end:g}"


def moment_block(moments: Sequence[Moment], *, budget: int, counter: TokenCounter) -> tuple[str, int]:
    """Numbered moments in rank order under a token budget: transcripts are cut per moment (each keeps
    an equal share of what is left) rather than moments dropped. Returns (text, moments shown)."""
    heads = [f"({i + 1}) [{m.video_id} {format_span(m.start, m.end)}]"
             + (f" speakers: {', '.join(m.speakers)}" if m.speakers else "") for i, m in enumerate(moments)]
    costs = [counter.count(h) + 1 for h in heads]
    shown = len(moments)
    while shown and sum(costs[:shown]) > budget:
        shown -= 1  # only when even the headers do not fit
    left = budget - sum(costs[:shown])
    lines = []
    bodies = [m.transcript + (" | captions: " + "; ".join(m.captions) if m.captions else "") for m in moments[:shown]]
    for i in range(shown):
        share = left // max(1, shown - i)
        body = truncate_tokens(bodies[i], share, counter) if counter.count(bodies[i]) > share else bodies[i]
        left -= counter.count(body)
        lines.append(f"{heads[i]}: {body}")
    return "\n".join(lines), shown


def answer_prompt(request: str, moments: Sequence[Moment], *, budget: int, counter: TokenCounter) -> tuple[str, int]:
    block, shown = moment_block(moments, budget=budget, counter=counter)
    example = f"[{moments[0].video_id} {format_span(moments[0].start, moments[0].end)}]" if moments else \
        "[news_0412 1:05–1:32]"
    return ANSWER_PROMPT.format(example=example, moments=block, request=request), shown


def parse_citations(text: str) -> list[tuple[str, float, float, str]]:
    """(video_id, start, end, matched text) of every citation-like bracket; reversed spans are swapped."""
    out = []
    for m in CITATION.finditer(text):
        try:
            s, e = parse_timestamp(m.group("start")), parse_timestamp(m.group("end"))
        except ValueError:
            continue
        out.append((m.group("vid").strip(), min(s, e), max(s, e), m.group(0)))
    return out


def validate(citations: Sequence[tuple[str, float, float, str]], retrieved: Sequence[Moment], *,
             snap_seconds: float = 2.0) -> list[Citation]:
    """Label each citation valid / snapped / invalid against the retrieved moments."""
    by_video: dict[str, list[Moment]] = {}
    for m in retrieved:
        by_video.setdefault(m.video_id, []).append(m)
    out = []
    for vid, s, e, raw in citations:
        cands = by_video.get(vid, [])
        overlap = [m for m in cands if min(e, m.end) - max(s, m.start) > 0 or (s == e and m.start <= s <= m.end)]
        if overlap:
            best = max(overlap, key=lambda m: min(e, m.end) - max(s, m.start))
            out.append(Citation(vid, s, e, "valid", best.moment_id, raw))
            continue
        near = sorted(cands, key=lambda m: gap((s, e), m.span))
        if near and gap((s, e), near[0].span) <= snap_seconds:
            m = near[0]
            out.append(Citation(vid, m.start, m.end, "snapped", m.moment_id, raw))
        else:
            out.append(Citation(vid, s, e, "invalid", "", raw))
    return out


def strip_invalid(text: str, citations: Sequence[Citation]) -> str:
    """The answer with invalid citations marked and snapped ones rewritten to the moment's bounds."""
    for c in citations:
        if c.status == "invalid":
            text = text.replace(c.text, f"{c.text}(unverified)", 1)
        elif c.status == "snapped":
            text = text.replace(c.text, f"[{c.video_id} {format_span(c.start, c.end)}]", 1)
    return text


def clip_list(citations: Sequence[Citation]) -> list[dict]:
    """Valid and snapped citations as an ordered clip list (duplicates removed)."""
    seen, out = set(), []
    for c in citations:
        key = (c.video_id, c.start, c.end)
        if c.status != "invalid" and key not in seen:
            seen.add(key)
            out.append({"video_id": c.video_id, "in": format_timestamp(c.start, "vtt"),
                        "out": format_timestamp(c.end, "vtt"), "start_s": c.start, "end_s": c.end,
                        "moment_id": c.moment_id, "status": c.status})
    return out


def export_clips(clips: Sequence[dict], fmt: str = "json") -> str:
    if fmt == "json":
        return json.dumps(list(clips), indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["video_id", "in", "out", "start_s", "end_s", "moment_id", "status"])
        w.writeheader()
        w.writerows(clips)
        return buf.getvalue()
    raise ValueError(f"unknown clip format {fmt!r} (json, csv)")


def citation_dicts(citations: Sequence[Citation]) -> list[dict]:
    return [asdict(c) for c in citations]
