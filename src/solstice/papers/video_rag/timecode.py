"""Timestamps as first-class data: seconds are floats end to end, text only at the edges.

Accepted forms: SRT `00:01:02,500`, WebVTT `00:01:02.500` / `01:02.500`, clock `1:02:03`,
`mm:ss`, `mm:ss.s` and bare seconds `62.5`. Output: `clock` (`1:02` / `1:02:03`, what a citation
shows), `srt` and `vtt`.
"""

from __future__ import annotations

import math
import re

_TS = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?\s*$")
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")


def parse_timestamp(text: str) -> float:
    """Seconds of a timestamp string; ValueError (naming the text) when it is not one."""
    m = _TS.match(text)
    if m:
        hours, minutes, seconds, frac = m.groups()
        if int(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
            raise ValueError(f"not a timestamp: {text!r} (minutes/seconds >= 60)")
        value = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
        if frac:
            value += int(frac) / 10 ** len(frac)
        return float(value)
    m = _SECONDS.match(text)
    if m:
        return float(m.group(1))
    raise ValueError(f"not a timestamp: {text!r}")


def _split(seconds: float) -> tuple[int, int, int, int]:
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"a timestamp must be a non-negative number of seconds, got {seconds}")
    ms_total = int(round(seconds * 1000))
    h, rest = divmod(ms_total, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return h, m, s, ms


def format_timestamp(seconds: float, style: str = "clock") -> str:
    """`clock`: `m:ss` or `h:mm:ss` (+ `.mmm` when not whole); `srt`: `hh:mm:ss,mmm`; `vtt`: `hh:mm:ss.mmm`."""
    h, m, s, ms = _split(seconds)
    if style == "srt":
        return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"
    if style == "vtt":
        return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
    if style != "clock":
        raise ValueError(f"unknown timestamp style {style!r} (clock, srt, vtt)")
    frac = f".{ms:03d}".rstrip("0") if ms else ""
    return f"{h}:{m:02d}:{s:02d}{frac}" if h else f"{m}:{s:02d}{frac}"


def format_span(start: float, end: float) -> str:
    return f"{format_timestamp(start)}–{format_timestamp(end)}"


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """|a ∩ b| / |a ∪ b| for time spans (the span hull as union, as the spec defines it); 0 for
    disjoint or touching spans; 1 for equal non-empty spans; empty spans give 0."""
    (s1, e1), (s2, e2) = a, b
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    hull = max(e1, e2) - min(s1, s2)
    return inter / hull if hull > 0 and inter > 0 else 0.0


def gap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds between two spans (0 when they overlap or touch)."""
    return max(0.0, max(a[0], b[0]) - min(a[1], b[1]))
