"""Loong scores: the judge's rating per instance, Avg Score and Perfect Rate per cell, and a
rule-based exact judge for offline checks (reference: src/utils/metric.py, src/step4_cal_metric.py).

- Avg Score: mean of the parsed ratings (0-100); Perfect Rate: share of parsed ratings equal to 100;
  scoring success: parsed / all instances of the cell (the reference divides by every line of the
  file, whatever the cell). Overall is the plain mean over instances.
- The exact judge answers a Loong judge prompt with `Rating: [[100]]` when the prediction equals
  the gold answer after normalisation (JSON / Python literals compared as structures, text
  case- and space-folded), else `Rating: [[0]]`.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from solstice.core.types import MetricValue
from solstice.judge.base import Verdict
from solstice.judge.ratings import parse_bracket_rating, parse_bracket_rating_reference
from solstice.metrics import mean_metric, proportion_metric
from solstice.papers.loong.data import LEVELS
from solstice.papers.loong.prompts import split_judge_prompt

_ANY_DOUBLE = re.compile(r"\[\[\s*-?\d+(?:\.\d+)?\s*\]\]")


def parse_rating(text: str, rule: str = "strict", out_of_range: str = "unparsed") -> Verdict:
    if rule == "reference":
        return parse_bracket_rating_reference(text)
    return parse_bracket_rating(text, 0.0, 100.0, out_of_range=out_of_range)


def out_of_range(text: str, verdict: Verdict) -> bool:
    """An unparsed rating that was there but outside [0, 100] (counted apart from missing ones)."""
    return not verdict.parsed and bool(_ANY_DOUBLE.search(text))


# -- the exact (rule-based) judge ------------------------------------------------------------------
def _literal(text: str) -> Any:
    t = text.strip()
    if t.startswith("```"):
        t = re.sub(r"^```[a-zA-Z]*\n?|```$", "", t).strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            v = parse(t)
            if isinstance(v, dict | list):
                return v
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return t


def _norm_text(s: str) -> str:
    s = s.strip().strip("#").strip()
    s = re.sub(r"\s+", " ", s).casefold()
    return s.rstrip("。.!！ ")


def canonical(v: Any) -> Any:
    if isinstance(v, str):
        lit = _literal(v)
        return _norm_text(v) if isinstance(lit, str) else canonical(lit)
    if isinstance(v, dict):  # lists inside a dict are groups (clustering, references): unordered
        return tuple(sorted(
            (_norm_text(str(k)), tuple(sorted((canonical(i) for i in x), key=repr)) if isinstance(x, list) else canonical(x))
            for k, x in v.items()))
    if isinstance(v, list | tuple):
        return tuple(canonical(x) for x in v)
    return _norm_text(str(v))


def answers_match(gold: Any, prediction: str) -> bool:
    """Gold and prediction equal as structures (dict / list answers parsed, text folded); unlike the
    string rules of `solstice.judge.lexical`, key order and clustering group order do not count."""
    return bool(prediction.strip()) and canonical(gold) == canonical(prediction)


def exact_judge_reply(prompt_text: str) -> str:
    """What the rule-based judge writes for a Loong judge prompt."""
    gold, pred = split_judge_prompt(prompt_text)
    hit = answers_match(gold, pred)
    return (f"Evaluation evidence: the prediction {'equals' if hit else 'differs from'} the gold answer "
            f"after normalisation.\nRating: [[{100 if hit else 0}]]")


# -- aggregation --------------------------------------------------------------------------------------
def cells(row: dict[str, Any]) -> list[str]:
    """The cells an instance counts in: overall, its task, its set, set×task and its type."""
    task = LEVELS[row["level"]]
    return ["overall", task, f"set{row['set']}", f"set{row['set']}/{task}", row["type"]]


def aggregate(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per cell: n, parsed, success rate, Avg Score, Perfect Rate (rows carry level, set, type and
    `score`, None when unparsed)."""
    by: dict[str, list[float | None]] = defaultdict(list)
    for r in rows:
        for c in cells(r):
            by[c].append(r["score"])
    out = {}
    for c, scores in by.items():
        ok = [s for s in scores if s is not None]
        out[c] = {
            "n": len(scores), "parsed": len(ok), "success": len(ok) / len(scores),
            "avg": sum(ok) / len(ok) if ok else math.nan,
            "perfect": sum(s == 100 for s in ok) / len(ok) if ok else math.nan,
        }
    return out


def cell_order(names: Iterable[str]) -> list[str]:
    tasks = list(LEVELS.values())

    def key(c: str) -> tuple:
        if c == "overall":
            return (0, 0, 0)
        if c in tasks:
            return (1, tasks.index(c), 0)
        if c.startswith("set") and "/" not in c:
            return (2, int(c[3:]), 0)
        if c.startswith("set"):
            s, t = c.split("/")
            return (3, int(s[3:]), tasks.index(t))
        return (4, 0, c)

    return sorted(names, key=key)


def cell_metrics(rows: Sequence[dict[str, Any]], prefix: str = "", *, with_sets_by_task: bool = False) -> dict[str, MetricValue]:
    """MetricValues (with bootstrap CIs) of Avg Score, Perfect Rate and scoring success per cell."""
    by: dict[str, list[float | None]] = defaultdict(list)
    for r in rows:
        for c in cells(r):
            by[c].append(r["score"])
    out: dict[str, MetricValue] = {}
    for c in cell_order(by):
        if "/" in c and not with_sets_by_task:
            continue
        scores = by[c]
        ok = [s for s in scores if s is not None]
        sfx = "" if c == "overall" else f"/{c}"
        out[f"{prefix}avg_score{sfx}"] = mean_metric(ok, note=f"{len(scores) - len(ok)} unparsed of {len(scores)}")
        out[f"{prefix}perfect_rate{sfx}"] = proportion_metric([s == 100 for s in ok])
        if c == "overall" or not prefix:
            out[f"{prefix}scoring_success{sfx}"] = proportion_metric([s is not None for s in scores])
    return out
