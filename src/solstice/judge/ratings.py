"""Where a judge's bracketed rating is (`Rating: [[87]]`, the MT-Bench convention used by Loong and
others). Reading the number and checking its range is `solstice.judge.parse.parse_score`'s job; this
module only decides which bracket counts.

`parse_bracket_rating` is strict: it reads the last `Rating: [[x]]`, else the first `[[x]]`, never a
bare number from the explanation, and a value outside [lo, hi] is unparsed (or clipped with
`out_of_range="clip"`, marked `confident=False`). `parse_bracket_rating_reference` is the permissive
rule of reference implementations: the first `[[x]]`, else the first `[x]`, any non-negative number,
no range check.
"""

from __future__ import annotations

import math
import re

from solstice.judge.base import Verdict
from solstice.judge.parse import parse_score

_NUM = r"(-?\d+(?:\.\d+)?)"
_RATING = re.compile(r"rating\s*[:：]?\s*\[\[\s*" + _NUM + r"\s*\]\]", re.I)
_DOUBLE = re.compile(r"\[\[\s*" + _NUM + r"\s*\]\]")
_REF_DOUBLE = re.compile(r"\[\[([0-9]*\.?[0-9]+)\]\]")
_REF_SINGLE = re.compile(r"\[([0-9]*\.?[0-9]+)\]")
_OUT_OF_RANGE = ("unparsed", "clip")


def _score(raw: str | None, text: str, lo: float, hi: float, clip: bool) -> Verdict:
    if raw is None:
        return Verdict(None, False, False, text)
    v = parse_score(raw, lo, hi, clip=clip)
    return Verdict(v.value, v.parsed, v.confident, text)


def parse_bracket_rating(text: str, lo: float = 0.0, hi: float = 100.0, *, out_of_range: str = "unparsed") -> Verdict:
    """The judge's rating; `parsed=False` when there is none or it lies outside [lo, hi]."""
    if out_of_range not in _OUT_OF_RANGE:
        raise ValueError(f"out_of_range must be one of {_OUT_OF_RANGE}, not {out_of_range!r}")
    found = _RATING.findall(text)
    raw = found[-1] if found else None
    if raw is None:
        m = _DOUBLE.search(text)
        raw = m.group(1) if m else None
    return _score(raw, text, lo, hi, clip=out_of_range == "clip")


def parse_bracket_rating_reference(text: str) -> Verdict:
    """The permissive reference rule: first `[[x]]`, else first `[x]`; no range check."""
    m = _REF_DOUBLE.search(text) or _REF_SINGLE.search(text)
    return _score(m.group(1) if m else None, text, -math.inf, math.inf, clip=False)
