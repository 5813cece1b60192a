"""choices13k risky-choice problems: loading, prompt rendering, expected value, answer parsing, and a
synthetic generator with the same schema (for tests and CI; the real data has no licence).

Row i of `c13k_selections.csv` is key "i" of `c13k_problems.json`: {"A": [[p, x], ...], "B": [...]}.
The human target is `bRate`, the mean over subjects of each subject's share of B choices.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from solstice.data import DataSource
from solstice.errors import DataError

_C13K = "https://raw.githubusercontent.com/jcpeterson/choices13k"
SELECTIONS = DataSource(
    "choices13k-selections", "choices13k/c13k_selections.csv",
    url=f"{_C13K}/ef7adfeeffb00f9ae0ac21e7b1e644df30a0388d/c13k_selections.csv",
    sha256="e21941718b83fd97a5997545489a66ce27bec3b3f62700a0774fb5f997fea5c7",
    license="none stated (jcpeterson/choices13k has no licence file): local use only",
    description="human choice rates of 14,568 risky-choice problems (Peterson et al. 2021, Science)",
)
PROBLEMS = DataSource(
    "choices13k-problems", "choices13k/c13k_problems.json",
    url=f"{_C13K}/c47edaeef25d450f6edd4882451c4de21b8a28ee/c13k_problems.json",
    sha256="c6bdb0ae7e0d0ca127b649b4996a7a49b3d0c4c43e5f9a851677fe4527276632",
    license="none stated (jcpeterson/choices13k has no licence file): local use only",
    description="the two gambles of each choices13k row",
)

Outcome = tuple[float, float]  # (probability, payoff)


@dataclass(frozen=True)
class Problem:
    """One row: gambles A (2 outcomes) and B (1-9 outcomes) and the human choice data."""

    row: int
    A: tuple[Outcome, ...]
    B: tuple[Outcome, ...]
    n: int = 0
    b_rate: float = math.nan
    amb: bool = False
    feedback: bool = True
    problem_id: int = -1

    @property
    def a_rate(self) -> float:
        return 1.0 - self.b_rate

    @property
    def human_choice(self) -> str:
        """The majority choice (the paper's rule: B if bRate >= 0.5)."""
        return "B" if self.b_rate >= 0.5 else "A"


def load_problems(selections: Path, problems: Path) -> list[Problem]:
    """Every row, in file order, with row i joined to key "i"."""
    import pandas as pd

    try:
        df = pd.read_csv(selections)
        raw = json.loads(Path(problems).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read choices13k: {str(exc).splitlines()[0]}") from exc
    need = {"Problem", "n", "bRate", "Amb", "Feedback"}
    if not need <= set(df.columns):
        raise DataError(f"{selections.name} lacks columns {sorted(need - set(df.columns))}")
    if len(raw) != len(df):
        raise DataError(f"{problems.name} has {len(raw)} problems but {selections.name} has {len(df)} rows")
    out = []
    for i, r in enumerate(df.itertuples(index=False)):
        g = raw.get(str(i))
        if g is None:
            raise DataError(f"{problems.name} has no key '{i}' for row {i}")
        out.append(Problem(
            row=i, A=tuple((float(p), float(x)) for p, x in g["A"]), B=tuple((float(p), float(x)) for p, x in g["B"]),
            n=int(r.n), b_rate=float(r.bRate), amb=bool(r.Amb), feedback=bool(r.Feedback), problem_id=int(r.Problem),
        ))
    return out


# -- expected value --------------------------------------------------------------------------------
def expected_value(gamble: Sequence[Outcome]) -> float:
    """EV with probabilities rounded to 4 decimals (the paper's analysis code; kept for parity)."""
    return float(sum(round(p, 4) * x for p, x in gamble))


def ev_choice(problem: Problem) -> str:
    """'A' when EV(A) > EV(B), else 'B' (ties go to B, as in the paper's analysis)."""
    return "A" if expected_value(problem.A) > expected_value(problem.B) else "B"


# -- rendering -------------------------------------------------------------------------------------
def _money(x: float) -> str:
    return f"${float(x)}"  # the paper's code prints Python floats: "$26.0", "$-1.0"


def render_machine(gamble: Sequence[Outcome], rng: random.Random | None, *, drop_zero: bool = False,
                   hide_probs: bool = False) -> str:
    """'$x with p% chance, ...' with the percentage rounded to 2 decimals; the last item ends with '.'."""
    outs = [o for o in gamble if not (drop_zero and o[0] == 0.0)] or list(gamble)
    if rng is not None:
        rng.shuffle(outs)
    if hide_probs:
        parts = [f"{_money(x)} with unknown chance" for _, x in outs]
    else:
        parts = [f"{_money(x)} with {round(p * 100, 2)}% chance" for p, x in outs]
    return ", ".join(parts) + "."


def render_prompt(problem: Problem, mode: str, *, seed: int = 0, render: str = "faithful",
                  drop_zero: bool = False, shuffle: bool = True) -> str:
    """The paper's prompt for `mode` (see prompts.FORWARD). The outcome shuffle is seeded by
    (seed, row), so every mode shows a row's outcomes in the same order."""
    from solstice.papers.llm_rationality.prompts import FORWARD

    rng = random.Random(f"{seed}:{problem.row}") if shuffle else None
    a = render_machine(problem.A, rng, drop_zero=drop_zero)
    b = render_machine(problem.B, rng, drop_zero=drop_zero, hide_probs=render == "amb_aware" and problem.amb)
    return FORWARD[mode].format(A=a, B=b, n=problem.n)


_MACHINE = re.compile(r"Machine ([AB]): (.*?)\s*\n")
_OUTCOME = re.compile(r"\$(-?[0-9.]+) with ([0-9.]+)% chance")


def gambles_from_prompt(text: str) -> dict[str, list[Outcome]]:
    """Reads the machines back from a rendered prompt (used by scripted agents and tests)."""
    out: dict[str, list[Outcome]] = {}
    for name, body in _MACHINE.findall(text):
        out[name] = [(float(p) / 100.0, float(x)) for x, p in _OUTCOME.findall(body)]
    return out


# -- parsing ---------------------------------------------------------------------------------------
_LETTER = re.compile(r"(?<![A-Za-z0-9])([AB])(?![A-Za-z0-9])")
_CHOICE_KEY = re.compile(r"""["']?choice["']?\s*[:=]\s*["']?\s*(?:machine\s+)?([AB])(?![A-Za-z0-9])""", re.I)


def parse_letter(text: str) -> str | None:
    """A zero-shot answer: the standalone letter A or B ('Answer: A', ' B'); None when absent or
    when both letters stand alone ('A or B'). Unlike the paper's substring test, 'AB' is no answer."""
    found = set(_LETTER.findall(text or ""))
    return found.pop() if len(found) == 1 else None


def parse_cot_choice(text: str) -> str | None:
    """A CoT answer: the value of the JSON key "choice" (any case); None when missing or when both
    "A" and "B" are given (the paper's rule)."""
    found = {m.upper() for m in _CHOICE_KEY.findall(text or "")}
    return found.pop() if len(found) == 1 else None


def _first_object(text: str) -> str | None:
    start = text.find("{")
    while start != -1:
        depth = 0
        for k in range(start, len(text)):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    return text[start : k + 1]
        start = text.find("{", start + 1)
    return None


_PAIR = re.compile(r"""["']?([^"'{}:,]*?)["']?\s*:\s*["']?\s*(-?[0-9]+(?:\.[0-9]+)?)\s*(%?)""")


def parse_aggregate(text: str) -> float | None:
    """P(A) from an aggregate answer: the first {...} object with keys naming machine A and B
    ('Machine A', 'A'); values as integer percentages, proportions, or 'NN%' strings. None when
    no such object parses (no keyword fallback, unlike the paper's code)."""
    obj = _first_object(text or "")
    if obj is None:
        return None
    vals: dict[str, float] = {}
    for key, num, _pct in _PAIR.findall(obj):
        k = key.strip().lower()
        name = "A" if re.search(r"(?:^|[^a-z])a$", k) else "B" if re.search(r"(?:^|[^a-z])b$", k) else None
        if name and name not in vals:
            vals[name] = float(num)
    if set(vals) != {"A", "B"} or vals["A"] < 0 or vals["B"] < 0:
        return None
    a, b = vals["A"], vals["B"]
    if a + b <= 0:
        return None
    return a / (a + b)  # percentages, proportions and head counts all normalise the same way


# -- synthetic problems (tests, CI) ----------------------------------------------------------------
def synthetic_problems(n: int, seed: int = 0, *, b_rate_fn=None) -> list[Problem]:
    """Random gamble pairs in the choices13k schema: A has 2 outcomes, B 1-4, payoffs in [-50, 100],
    probabilities in steps of 0.01. `b_rate_fn(problem) -> bRate` sets the human rate (default:
    a noisy logistic of the EV difference)."""
    rng = random.Random(seed)

    def gamble(k: int) -> tuple[Outcome, ...]:
        if k == 1:
            return ((1.0, float(rng.randint(-20, 60))),)
        cuts = sorted(rng.sample(range(1, 100), k - 1))
        ps = [(b - a) / 100 for a, b in zip([0, *cuts], [*cuts, 100])]
        return tuple((p, float(rng.randint(-50, 100))) for p in ps)

    out = []
    for i in range(n):
        pr = Problem(row=i, A=gamble(2), B=gamble(rng.choice([1, 2, 2, 3, 4])), n=rng.randint(15, 33),
                     amb=rng.random() < 0.2, feedback=rng.random() < 0.8, problem_id=i + 1)
        if b_rate_fn is None:
            d = expected_value(pr.A) - expected_value(pr.B)
            b = 1.0 / (1.0 + math.exp(0.15 * d)) * 0.8 + 0.2 * rng.random()
        else:
            b = float(b_rate_fn(pr))
        out.append(Problem(pr.row, pr.A, pr.B, pr.n, min(max(b, 0.0), 1.0), pr.amb, pr.feedback, pr.problem_id))
    return out
