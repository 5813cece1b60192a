"""Bracketed judge ratings (`Rating: [[87]]`, the MT-Bench convention used by Loong and others).

`parse_bracket_rating` is strict: it reads the last `Rating: [[x]]`, else the first `[[x]]`, never a
bare number from the explanation, and a value outside [lo, hi] is unparsed (or clipped with
`out_of_range="clip"`, marked `confident=False`). `parse_bracket_rating_reference` is the permissive
rule of reference implementations: the first `[[x]]`, else the first `[x]`, any non-negative number,
no range check.
"""

from __future__ import annotations

import re

from solstice.judge.base import Verdict

_NUM = r"(-?\d+(?:\.\d+)?)"
_RATING = re.compile(r"rating\s*[:：]?\s*\[\[\s*" + _NUM + r"\s*\]\]", re.I)
_DOUBLE = re.compile(r"\[\[\s*" + _NUM + r"\s*\]\]")
_REF_DOUBLE = re.compile(r"\[\[([0-9]*\.?[0-9]+)\]\]")
_REF_SINGLE = re.compile(r"\[([0-9]*\.?[0-9]+)\]")


def parse_bracket_rating(text: str, lo: float = 0.0, hi: float = 100.0, *, out_of_range: str = "unparsed") -> Verdict:
    """The judge's rating; `parsed=False` when there is none or it lies outside [lo, hi]."""
    found = _RATING.findall(text)
    raw = found[-1] if found else None
    if raw is None:
        m = _DOUBLE.search(text)
        raw = m.group(1) if m else None
    if raw is None:
        return Verdict(None, False, False, text)
    v = float(raw)
    if lo <= v <= hi:
        return Verdict(v, True, True, text)
    if out_of_range == "clip":
        return Verdict(min(max(v, lo), hi), True, False, text)
    return Verdict(None, False, False, text)


def parse_bracket_rating_reference(text: str) -> Verdict:
    """The permissive reference rule: first `[[x]]`, else first `[x]`; no range check."""
    m = _REF_DOUBLE.search(text) or _REF_SINGLE.search(text)
    if not m:
        return Verdict(None, False, False, text)
    return Verdict(float(m.group(1)), True, True, text)
