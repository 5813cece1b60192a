"""QA synthesis (paper §3.2): the four operators — mining, complex, logically consistent,
under-specified — as prompt + parser + validator, and the LLaVA conversation JSON they emit.

The paper runs GPT-4V on each image with its original QA. Here an operator is run either by a model
(`model_operator`: the prompt below with the image when the model sees images, else the figure's
text rendering; the reply parsed into question/answer pairs) or by rule templates over the figure's
specification (`rule_operator`). Every pair goes through the same validator: its answer must match
the answer type, the question must not repeat (normalised text, also against MathVista testmini),
and `solve` — an independent reader of the question against the figure's ground truth — must
recover the answer (`verified`); a question `solve` cannot read is kept as unverified only when
`keep_unverified` is set.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from solstice.papers.math_llava.figures import Figure

OPERATORS = ("mining", "complex", "consistent", "underspecified")
ORIGINS = ("original", *OPERATORS)

PROMPTS = {
    "mining": "Here is a math figure and one question about it.\n{context}\nOriginal question: {question}\n"
              "Original answer: {answer}\nWrite {k} new questions that use other information in the figure, each with "
              "a short final answer.\nFormat: Question: ... Answer: ...",
    "complex": "Here is a math figure and one question about it.\n{context}\nOriginal question: {question}\n"
               "Original answer: {answer}\nWrite {k} harder questions that need several steps combining values from the "
               "figure, each with a short final answer.\nFormat: Question: ... Answer: ...",
    "consistent": "Here is a math figure and one question about it.\n{context}\nOriginal question: {question}\n"
                  "Original answer: {answer}\nRewrite the question {k} times so that the known and the asked quantity "
                  "swap (the answers must agree with the original), each with a short final answer.\n"
                  "Format: Question: ... Answer: ...",
    "underspecified": "Here is a math figure and one question about it.\n{context}\nOriginal question: {question}\n"
                      "Original answer: {answer}\nRewrite the question {k} times deleting the numbers it states, so they "
                      "must be read from the figure; keep the answer.\nFormat: Question: ... Answer: ...",
}


@dataclass(frozen=True)
class QA:
    fid: str
    origin: str
    question: str
    answer: str
    verified: bool | None = None


def norm_q(q: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", q.lower()).strip()


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """'Question: ... Answer: ...' pairs from a model reply (any order of lines, numbered or not)."""
    pat = re.compile(r"Question\s*\d*\s*[:.]\s*(.+?)\s*Answer\s*\d*\s*[:.]\s*(.+?)(?=\n\s*(?:\d+[.)]\s*)?Question|\Z)",
                     re.S | re.I)
    return [(q.strip(), a.strip().splitlines()[0].strip().rstrip(".")) for q, a in pat.findall(text or "")]


# -- ground truth -------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip(".")


def solve(question: str, fig: Figure) -> str | None:
    """The answer of a question about `fig`, read independently of how it was generated; None when
    the question is not one this reader understands or is ambiguous."""
    q = question.lower()
    s = fig.spec
    if fig.kind in ("bar", "line", "table"):
        vals = dict(zip(s["labels"], s["values"]))
        named = [lab for lab in s["labels"] if re.search(rf"\b{lab}\b", q)]
        if m := re.search(r"which item has (?:the )?value (\d+)", q):
            hits = [k for k, v in vals.items() if v == int(m.group(1))]
            return hits[0] if len(hits) == 1 else None
        if "largest" in q and "smallest" in q and "difference" in q:
            return _fmt(max(vals.values()) - min(vals.values()))
        if "which item" in q and ("largest" in q or "highest" in q):
            top = max(vals.values())
            hits = [k for k, v in vals.items() if v == top]
            return hits[0] if len(hits) == 1 else None
        if q.startswith("how many") and ("bars" in q or "items" in q or "points" in q or "rows" in q):
            return str(len(vals))
        if ("sum" in q or "plus" in q or "total" in q) and len(named) == 2:
            return _fmt(vals[named[0]] + vals[named[1]])
        if "average" in q and "all" in q:
            return _fmt(sum(vals.values()) / len(vals))
        if re.search(r"(value|price|cost) of", q) and len(named) == 1:
            return _fmt(vals[named[0]])
        return None
    if fig.kind == "triangle":
        a, b, c = s["a"], s["b"], s["c"]
        if "area" in q:
            return _fmt(a * b / 2)
        if "perimeter" in q:
            return _fmt(a + b + c)
        if re.search(r"ab = \d+ and ac = \d+", q) and "bc" in q:
            return _fmt(b)
        if re.search(r"length of (the hypotenuse|ab)", q):
            return _fmt(c)
        return None
    if fig.kind == "angle":
        x, y = s["x"], s["y"]
        if "difference" in q:
            return _fmt(abs(y - x))
        if re.search(r"angle 2 (is|=|measures) \d+", q) and re.search(r"what is (the measure of )?angle 1", q):
            return _fmt(x)
        if re.search(r"what is (the measure of )?angle 2", q):
            return _fmt(y)
        if "is angle 1 acute" in q:
            return "yes" if x < 90 else "no"
    return None


# -- rule operators -----------------------------------------------------------------------------
def original_qa(fig: Figure, rng: random.Random) -> QA:
    s = fig.spec
    if fig.kind in ("bar", "line", "table"):
        lab = rng.choice(s["labels"])
        word = "price" if fig.kind == "table" else "value"
        q = f"What is the {word} of {lab}?"
    elif fig.kind == "triangle":
        q = f"AC = {s['a']} and BC = {s['b']}. What is the length of AB?"
    else:
        q = f"Angle 1 measures {s['x']} degrees. What is the measure of angle 2?"
    return QA(fig.fid, "original", q, solve(q, fig) or "", True)


def rule_operator(op: str, fig: Figure, orig: QA, rng: random.Random) -> list[QA]:
    """Template questions with answers computed from the figure's specification (directly, not
    through `solve`, so the validator checks the templates independently); an ambiguous answer
    (a tie, a repeated value) is left empty and rejected."""
    s = fig.spec
    out: list[tuple[str, Any]] = []
    if fig.kind in ("bar", "line", "table"):
        labs, vals = s["labels"], s["values"]
        by = dict(zip(labs, vals))
        a, b = rng.sample(labs, 2)
        unit = {"bar": "bars", "line": "points", "table": "rows"}[fig.kind]
        if op == "mining":
            top = [k for k, v in by.items() if v == max(vals)]
            other = rng.choice([x for x in labs if not re.search(rf"\b{x}\b", orig.question)])
            out = [("Which item has the largest value?", top[0] if len(top) == 1 else None),
                   (f"How many {unit} are there?", len(labs)), (f"What is the value of {other}?", by[other])]
        elif op == "complex":
            out = [(f"What is the sum of the values of {a} and {b}?", by[a] + by[b]),
                   ("What is the difference between the largest and the smallest value?", max(vals) - min(vals)),
                   ("What is the average value of all items?", sum(vals) / len(vals))]
        elif op == "consistent":
            lab = next(x for x in labs if re.search(rf"\b{x}\b", orig.question))
            same = [k for k, v in by.items() if v == by[lab]]
            out = [(f"Which item has the value {by[lab]}?", lab if len(same) == 1 else None)]
        else:
            out = [(f"What is the value of {a} plus the value of {b}?", by[a] + by[b])]
    elif fig.kind == "triangle":
        out = {"mining": [("What is the perimeter of the triangle?", s["a"] + s["b"] + s["c"])],
               "complex": [("What is the area of triangle ABC?", s["a"] * s["b"] / 2)],
               "consistent": [(f"AB = {s['c']} and AC = {s['a']}. What is the length of BC?", s["b"])],
               "underspecified": [("What is the length of AB?", s["c"])]}[op]
    else:
        out = {"mining": [("Is angle 1 acute?", "yes" if s["x"] < 90 else "no")],
               "complex": [("What is the difference between angle 2 and angle 1?", abs(s["y"] - s["x"]))],
               "consistent": [(f"Angle 2 measures {s['y']} degrees. What is the measure of angle 1?", s["x"])],
               "underspecified": [("What is the measure of angle 2?", s["y"])]}[op]
    return [QA(fig.fid, op, q, "" if a is None else (a if isinstance(a, str) else _fmt(a))) for q, a in out]


def model_operator(model: Any, op: str, figs: Sequence[Figure], origs: Sequence[QA], images: Sequence[Any] | None,
                   k: int = 3, max_new_tokens: int = 160) -> list[list[QA]]:
    """Run one operator with a model; the figure image is attached when `images` is given (a
    vision model), else the figure's text rendering is the context."""
    from solstice.models import GenParams, user_message

    prompts = []
    for i, (fig, orig) in enumerate(zip(figs, origs)):
        context = "The figure is attached." if images else f"Figure: {fig.describe()}"
        text = PROMPTS[op].format(context=context, question=orig.question, answer=orig.answer, k=k)
        prompts.append([user_message(text, [images[i]] if images else [])])
    outs = model.generate(prompts, GenParams(max_new_tokens=max_new_tokens, temperature=0.0))
    return [[QA(fig.fid, op, q, a) for q, a in parse_pairs(o[0].text)] for fig, o in zip(figs, outs)]


# -- validation and output ----------------------------------------------------------------------
def _answer_ok(a: str) -> bool:
    return bool(a) and len(a) <= 40 and "\n" not in a


def validate(pairs: Iterable[QA], figs: dict[str, Figure], *, banned: Iterable[str] = (),
             keep_unverified: bool = False) -> tuple[list[QA], dict[str, int]]:
    """Accepted pairs (verified flag set) and the count of each rejection reason."""
    banned_q = {norm_q(b) for b in banned}
    seen: set[tuple[str, str]] = set()  # per image: the same question on two images is two items
    stats = {"generated": 0, "accepted": 0, "verified": 0, "bad_answer": 0, "duplicate": 0, "wrong": 0,
             "unverifiable": 0}
    out = []
    for qa in pairs:
        stats["generated"] += 1
        key = norm_q(qa.question)
        if not _answer_ok(qa.answer):
            stats["bad_answer"] += 1
            continue
        if key in banned_q or (qa.fid, key) in seen:
            stats["duplicate"] += 1
            continue
        truth = solve(qa.question, figs[qa.fid])
        if truth is None:
            stats["unverifiable"] += 1
            if not keep_unverified:
                continue
            ok: bool | None = None
        else:
            ok = norm_q(truth) == norm_q(qa.answer)
            if not ok:
                stats["wrong"] += 1
                continue
        seen.add((qa.fid, key))
        stats["accepted"] += 1
        stats["verified"] += bool(ok)
        out.append(QA(qa.fid, qa.origin, qa.question, qa.answer, ok))
    return out, stats


def to_llava(pairs: Sequence[QA], image_name: str = "{fid}.png") -> list[dict[str, Any]]:
    """LLaVA conversation records with an `origin` tag per item."""
    counters: dict[tuple[str, str], int] = {}
    out = []
    for qa in pairs:
        k = counters.get((qa.fid, qa.origin), 0)
        counters[(qa.fid, qa.origin)] = k + 1
        out.append({"id": f"{qa.fid}-{qa.origin}-{k}", "image": image_name.format(fid=qa.fid),
                    "conversations": [{"from": "human", "value": "<image>\n" + qa.question},
                                      {"from": "gpt", "value": qa.answer}],
                    "origin": qa.origin, "verified": qa.verified})
    return out


def build_dataset(figs: Sequence[Figure], seed: int = 0, banned: Iterable[str] = ()) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Originals + the four rule operators on every figure, validated, as LLaVA JSON."""
    rng = random.Random(seed)
    pairs: list[QA] = []
    for fig in figs:
        orig = original_qa(fig, rng)
        pairs.append(orig)
        for op in OPERATORS:
            pairs += rule_operator(op, fig, orig, rng)
    kept, stats = validate(pairs, {f.fid: f for f in figs}, banned=banned)
    return to_llava(kept), stats
