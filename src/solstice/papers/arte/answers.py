"""Answer extraction and normalisation (spec "Scoring"): the `<ans>…</ans>` tag, else the text after
"the answer is", else the last non-empty line; normalised by stripping, dropping the parentheses
around an option letter, case-folding Yes/No/True/False and collapsing spaces. A reply with nothing
to extract gives "" (counted wrong, never an error)."""

from __future__ import annotations

import re

_TAG = re.compile(r"<ans>(.*?)</ans>", re.S | re.I)
_OPEN_TAG = re.compile(r"<ans>\s*([^<\n]+)", re.I)
_IS = re.compile(r"the answer is[:\s]*(.+)", re.I)
_CASEFOLD = {"yes", "no", "true", "false", "valid", "invalid"}


def normalise(ans: str) -> str:
    s = " ".join(ans.strip().split())
    s = s.rstrip(".").strip()
    m = re.fullmatch(r"\(([A-Za-z])\)", s)
    if m:
        s = m.group(1)
    if s.lower() in _CASEFOLD:
        s = s.lower()
    return s


def extract(text: str) -> str:
    tags = _TAG.findall(text)
    if tags:
        return normalise(tags[-1])
    m = _OPEN_TAG.search(text)
    if m:
        return normalise(m.group(1))
    found = _IS.findall(text)
    if found:
        return normalise(found[-1].splitlines()[0])
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return normalise(lines[-1]) if lines else ""


def is_correct(text: str, target: str) -> bool:
    got = extract(text)
    return bool(got) and got == normalise(target)
