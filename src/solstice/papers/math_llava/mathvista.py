"""MathVista testmini: the official zero-shot query, answer extraction, normalisation and scoring.

Query (official `build_query.py`, zero-shot, solution style): "Question: {q}" (+ " (Unit: {u})"),
"Choices:" with "(A) ..." lines when there are choices, the type hint, then "Solution:" — joined by
newlines (the trailing space of "Solution: " is stripped with the whole query, as the script does).

Extraction (deterministic first; the official script falls back to a paid LLM extractor, here any
model of the model layer in the optional `extractor` role, asked only where the cascade fails): empty -> "";
a multiple-choice response equal to a choice -> it; an integer / float response that parses -> it;
'The answer is "X".' -> X; then our rule cascade: MC — the last "(X)" letter, else "answer is X" /
"answer: X", else a standalone option letter at the end; free-form — the last bracketed list (list
answers) or the last number. Nothing found -> unparsed (the raw response is kept).

Normalisation (official `calculate_score.py`): MC — an exact choice text (checked first: ours; the
official order re-reads the choice "(b)" of pids 168 and 849 as a letter), the letter in "(X)", a letter maps to its choice
text, otherwise the Levenshtein-nearest choice (so any text earns a choice: the **lenient** score);
the **strict** score counts an MC answer wrong when no letter or exact choice text was found.
integer -> str(int(float(x))); float -> str(round(float(x), precision)); list -> str(x).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solstice.errors import DataError

HINTS = {
    "multi_choice": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
    "float1": "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the "
              "final value, e.g., 1.2, 1.3, 1.4, at the end.",
    "float2": "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the "
              "final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
            "[1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}
BREAKDOWNS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade", "skills")
TASK_ABBR = {"figure question answering": "FQA", "geometry problem solving": "GPS", "math word problem": "MWP",
             "textbook question answering": "TQA", "visual question answering": "VQA"}


@dataclass(frozen=True)
class Problem:
    pid: str
    question: str
    image: str
    choices: tuple[str, ...] | None
    unit: str | None
    precision: int | None
    answer: str
    question_type: str
    answer_type: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def letters(self) -> list[str]:
        return [chr(ord("A") + i) for i in range(len(self.choices or ()))]


def load_testmini(path: str | Path) -> list[Problem]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read MathVista testmini '{path}': {exc}") from exc
    out = []
    for pid, r in raw.items():
        if r["question_type"] == "multi_choice" and not r.get("choices"):
            raise DataError(f"MathVista pid {pid}: a multiple-choice item without choices")
        out.append(Problem(str(r.get("pid", pid)), r["question"], r["image"],
                           tuple(r["choices"]) if r.get("choices") else None, r.get("unit"), r.get("precision"),
                           str(r["answer"]), r["question_type"], r["answer_type"], dict(r.get("metadata") or {})))
    return sorted(out, key=lambda p: int(p.pid) if p.pid.isdigit() else p.pid)


def hint(p: Problem) -> str:
    if p.question_type == "multi_choice":
        return HINTS["multi_choice"]
    if p.answer_type == "float":
        return HINTS["float2" if p.precision == 2 else "float1"]
    return HINTS[p.answer_type]


def build_query(p: Problem) -> str:
    q = f"Question: {p.question}" + (f" (Unit: {p.unit})" if p.unit else "")
    parts = [q]
    if p.choices:
        parts.append("\n".join(["Choices:"] + [f"({c}) {t}" for c, t in zip(p.letters, p.choices)]))
    parts += [hint(p), "Solution: "]
    return "\n".join(parts).strip()


# -- extraction ---------------------------------------------------------------------------------
_NUM = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_LIST = re.compile(r"\[[^\[\]]*\]")


def extract(response: str, p: Problem) -> tuple[str, bool]:
    """(extraction, parsed). Unparsed keeps the raw response (the official fallback)."""
    r = (response or "").strip()
    if not r:
        return "", False
    if p.question_type == "multi_choice" and r in (p.choices or ()):
        return r, True
    if p.answer_type == "integer" and re.fullmatch(r"-?\d+", r):
        return str(int(r)), True
    if p.answer_type == "float":
        try:
            return str(float(r)), True
        except ValueError:
            pass
    m = re.search(r'The answer is "(.*)"\.', r)
    if m:
        return m.group(1), True
    if p.question_type == "multi_choice":
        letters = "".join(p.letters)
        found = re.findall(rf"\(([{letters}])\)", r)
        if found:
            return f"({found[-1]})", True
        m = re.findall(rf"answer(?: is|:)\s*\(?([{letters}])\b", r, flags=re.I)
        if m:
            return f"({m[-1].upper()})", True
        m = re.search(rf"(?:^|\s)([{letters}])[.)]?\s*$", r)
        if m:
            return f"({m.group(1)})", True
        return r, False
    if p.answer_type == "list":
        found = _LIST.findall(r)
        return (found[-1], True) if found else (r, False)
    nums = _NUM.findall(r)
    if nums:
        return nums[-1].replace(",", ""), True
    return r, False


def _nearest(prediction: str, choices: Sequence[str]) -> str:
    from rapidfuzz.distance import Levenshtein

    d = [Levenshtein.distance(prediction, c) for c in choices]
    return choices[d.index(min(d))]


def normalize(extraction: Any, p: Problem, *, strict: bool = False) -> str | None:
    """The official normalisation; `strict` returns None for an MC extraction that is neither a
    letter in parentheses, an option letter nor a choice text (instead of the nearest choice)."""
    if p.question_type == "multi_choice":
        x = extraction.strip() if isinstance(extraction, str) else str(extraction)
        if x in (p.choices or ()):
            return x  # an exact choice text first: choices like "(b)" (pids 168, 849) would be re-read as letters
        letter = re.findall(r"\(([a-zA-Z])\)", x)
        if letter:
            x = letter[0].upper()
        if x in p.letters:
            return p.choices[p.letters.index(x)]  # letter -> its own choice (duplicates are fine)
        return None if strict else _nearest(x, list(p.choices or ()))
    try:
        if p.answer_type == "integer":
            return str(int(float(extraction)))
        if p.answer_type == "float":
            return str(round(float(extraction), int(p.precision or 0)))
        if p.answer_type == "list":
            return str(extraction)
    except (TypeError, ValueError):
        return None
    return str(extraction)


def is_correct(prediction: str | None, p: Problem) -> bool:
    return prediction is not None and prediction == p.answer


def cascade_failures(responses: Sequence[str], problems: Sequence[Problem]) -> list[int]:
    """Indices of the non-empty responses the deterministic cascade cannot parse: the LLM
    extractor's work (an empty response extracts to "" without asking it, as officially)."""
    return [i for i, (r, p) in enumerate(zip(responses, problems, strict=True))
            if (r or "").strip() and not extract(r, p)[1]]


def extractor_request(response: str, p: Problem) -> str:
    """The official LLM-extraction request for a response to `p` (its query as the model saw it)."""
    from solstice.papers.math_llava.prompts import extraction_prompt

    return extraction_prompt(build_query(p), response)


def llm_extraction(text: str) -> str:
    """The extractor's reply as an extraction: its first non-empty line, stripped (the official
    takes the whole reply; a small local model may continue past the answer)."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def score_responses(responses: Sequence[str], problems: Sequence[Problem],
                    llm: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per item: extraction, parsed flag, who decided it (`rules`, `llm`, or `none`), lenient and
    strict normalised predictions and correctness. `llm` maps pid -> the LLM extractor's reply for
    cascade failures; a non-empty reply is the extraction (the official `verify_extraction`) and
    goes through the same normalisation as a rule extraction."""
    rows = []
    for r, p in zip(responses, problems, strict=True):
        ext, parsed = extract(r, p)
        by = "rules" if parsed else "none"
        if not parsed and llm and p.pid in llm and llm_extraction(llm[p.pid]):
            ext, parsed, by = llm_extraction(llm[p.pid]), True, "llm"
        lenient = normalize(ext, p)
        strict = normalize(ext, p, strict=True) if parsed else None
        rows.append({"pid": p.pid, "extraction": ext, "parsed": parsed, "extracted_by": by, "prediction": lenient,
                     "correct": is_correct(lenient, p), "correct_strict": is_correct(strict, p)})
    return rows


def _values(p: Problem, key: str) -> list[str]:
    v = getattr(p, key, None) if key in ("question_type", "answer_type") else p.metadata.get(key)
    return [str(x) for x in (v if isinstance(v, list) else [v])]


def breakdown(rows: Sequence[dict[str, Any]], problems: Sequence[Problem], key: str,
              flag: str = "correct") -> dict[str, tuple[int, int]]:
    """value -> (correct, total) for a field of the problem or its metadata; `skills` is
    multi-label (an item counts under each of its skills)."""
    out: dict[str, list[int]] = {}
    for row, p in zip(rows, problems, strict=True):
        for val in _values(p, key):
            c = out.setdefault(val, [0, 0])
            c[0] += bool(row[flag])
            c[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def breakdown_flags(rows: Sequence[dict[str, Any]], problems: Sequence[Problem],
                    flag: str = "correct") -> dict[str, dict[str, list[bool]]]:
    """key -> value -> the per-item flags of the items with that value (for CIs), for every
    key of BREAKDOWNS; counts agree with `breakdown`."""
    out: dict[str, dict[str, list[bool]]] = {k: {} for k in BREAKDOWNS}
    for row, p in zip(rows, problems, strict=True):
        for key in BREAKDOWNS:
            for val in _values(p, key):
                out[key].setdefault(val, []).append(bool(row[flag]))
    return {k: dict(sorted(v.items())) for k, v in out.items()}


# -- reference baselines ------------------------------------------------------------------------
def analytic_random(problems: Sequence[Problem]) -> float:
    """Expected accuracy of a uniform random option on MC items and a wrong free-form answer."""
    return sum(1 / len(p.choices) for p in problems if p.question_type == "multi_choice") / len(problems)


def first_option_or_two(p: Problem) -> str:
    """'first option for MC, 2 for free-form' as a response."""
    return "(A)" if p.question_type == "multi_choice" else "2"
