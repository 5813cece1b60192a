"""What a paper module declares: its identity, config, model roles, claims and reproductions.

A paper package `solstice.papers.<id>` exposes `PAPER = PaperSpec(...)` in its `__init__.py`
(cheap to import: no torch), and names its runner lazily as "module:function". The runner has the
signature `run(cfg, ctx) -> dict[str, MetricValue]`.
"""

from __future__ import annotations

import importlib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from solstice.core.config import BaseConfig
from solstice.core.types import MetricValue

# Verdicts of a paper claim (kind "claim"), strongest first.
REPRODUCED = "reproduced"  # the 95% CI lies wholly on the claimed side (or inside the tolerance band)
POINT_HOLDS = "point estimate holds"  # no usable CI (or two marginal values): the point estimate holds
INCONCLUSIVE = "inconclusive"  # the CI covers both outcomes
NOT_REPRODUCED = "not reproduced"  # the CI lies wholly on the opposite side (or, without a CI, the point does)
FAILED = "failed"  # the run produced no usable value (e.g. "4 of 4 unparsed"; the detail says)
NOT_RUN = "not run"  # declared not run here (a large model, a paid API), left out by the run's config,
# or the run did not finish
# Outcomes of a harness check (kind "harness"): golden values, parity, data facts.
PASS, FAIL = "pass", "fail"
PARTLY = POINT_HOLDS  # the name before the verdicts were split; kept for imports
CLAIM_STATUSES = (REPRODUCED, POINT_HOLDS, INCONCLUSIVE, NOT_REPRODUCED, FAILED, NOT_RUN)
HARNESS_STATUSES = (PASS, FAIL, FAILED, NOT_RUN)


@dataclass(frozen=True)
class Role:
    """A model role (target, judge, mutator, ...): its default spec and needed capabilities.

    An empty `default` makes the role optional: it has no model unless `--model role=spec` names
    it (a bare `--model spec` sets only the other roles); the paper asks `ctx.has_model(role)`."""

    default: str = "default"
    requires: frozenset[str] = frozenset({"generate"})
    description: str = ""
    # capabilities the resolved config adds (e.g. `vision` when images are attached), checked
    # with `requires` before the run starts
    requires_for: Callable[[Any], frozenset[str]] | None = None


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how our metrics test it (see `evaluate` for the rules).

    - A bound or comparison claim gives `check="<metric> <op> <number>"`. A comparison of two arms
      names the paired difference the paper's run computes on the same items or seeds
      (`paired_difference_metric`): `check="acc_diff > 0"`. It is reproduced only when the metric's
      95% CI lies wholly on the claimed side. `check="a > b"` between two metrics compares two
      marginal values and is at most "point estimate holds".
    - A value claim names our `metric`, the paper's `paper_value` and a `tolerance`: reproduced when
      our CI lies inside paper_value ± tolerance, not reproduced when it lies wholly outside.
    - `kind="harness"`: a golden value, parity with official outputs or a data fact; pass/fail on
      the point value, reported apart and never counted in the paper-claims tally.
    - `not_run="why; the command that would run it"`: the report shows no number of ours.
    - `unparsed`: the metric holding the share of unparsable model outputs (value = share, n =
      outputs); default "unparsed". A claim whose metric is undefined is then "failed: k of n
      unparsed".
    - `paper_value` on a check claim is the paper's own value of the checked metric (drawn in the
      forest plot beside ours).
    """

    key: str
    description: str
    source: str
    metric: str | None = None
    paper_value: float | None = None
    tolerance: float | None = None
    check: str | None = None
    setting: str = ""
    not_run: str = ""
    # "claim": a claim about the paper's effect, tested on model outputs (may be "reproduced").
    # "harness": a golden value, parity with official outputs or a data fact (pass/fail, reported
    # apart, never counted in the paper-claims tally).
    kind: str = "claim"
    unparsed: str = ""


@dataclass(frozen=True)
class Reproduction:
    """A preset run of the paper: config overrides, model roles and sample limit."""

    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)
    limit: int | None = None
    minutes: float = 1.0


@dataclass(frozen=True)
class PaperSpec:
    id: str
    title: str
    arxiv: str
    kind: str
    version: str
    config_cls: type[BaseConfig]
    run: str
    roles: Mapping[str, Role] = field(default_factory=lambda: {"target": Role()})
    claims: tuple[Claim, ...] = ()
    scales: Mapping[str, Reproduction] = field(default_factory=dict)
    datasets: Callable[[Any], list[Any]] | None = None
    code_exec: bool = False
    summary: str = ""

    def runner(self) -> Callable[..., dict[str, MetricValue]]:
        module, _, attr = self.run.partition(":")
        return getattr(importlib.import_module(module), attr)


_CHECK = re.compile(r"^\s*([A-Za-z0-9_./@-]+)\s*(>=|<=|>|<|==)\s*([A-Za-z0-9_./@+-]+)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": lambda a, b: math.isclose(a, b, abs_tol=1e-9),
}
_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "=="}
MIN_SEEDS_FOR_CI = 5


@dataclass(frozen=True)
class Assessment:
    """The verdict on one claim and what it was read from.

    `ours` is the metric the verdict rests on (None when the claim was not run or failed: the
    report then shows no number); `reference` the value it is compared with (the bound of a check,
    the paper's value of a value claim); `rule` how it was tested: "interval" (a CI against a
    bound), "band" (a CI against paper_value ± tolerance), "point" (no usable CI), "marginal" (two
    metrics compared by their point values) or "" (not tested).
    """

    key: str
    kind: str
    status: str
    detail: str
    ours_name: str = ""
    ours: MetricValue | None = None
    reference: float | None = None
    paper_value: float | None = None
    rule: str = ""

    @property
    def label(self) -> str:
        """The verdict in words, e.g. "failed: 4 of 4 unparsed"."""
        return f"{self.status}: {self.detail}" if self.status == FAILED and self.detail else self.status

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "kind": self.kind, "status": self.status, "detail": self.detail,
            "rule": self.rule, "metric": self.ours_name or None,
            "ours": None if self.ours is None else self.ours.to_json(),
            "reference": self.reference, "paper_value": self.paper_value,
        }


def usable_ci(m: MetricValue) -> tuple[float, float] | None:
    """The metric's CI when it can carry a verdict: present, finite, and not a bootstrap over
    fewer than `MIN_SEEDS_FOR_CI` seeds (with so few seeds each seed is shown, not an interval)."""
    if m.ci95 is None or any(c is None or math.isnan(c) for c in m.ci95):
        return None
    if m.unit == "seeds" and m.n < MIN_SEEDS_FOR_CI:
        return None
    return (float(m.ci95[0]), float(m.ci95[1]))


def _number(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _ci_txt(ci: tuple[float, float]) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _failure(claim: Claim, name: str, metrics: Mapping[str, MetricValue]) -> str:
    """Why a needed metric has no value: the unparsed outputs when the run counted them."""
    u = metrics.get(claim.unparsed or "unparsed")
    if u is not None and u.n and not math.isnan(u.value) and u.value > 0:
        k = int(round(u.value * u.n))
        return f"{k} of {u.n} unparsed"
    return f"'{name}' is undefined (n = {metrics[name].n})"


def _absent(name: str) -> str:
    return f"this run did not compute '{name}' (its config or scale leaves that experiment out)"


def _unparsed_note(claim: Claim, metrics: Mapping[str, MetricValue]) -> str:
    u = metrics.get(claim.unparsed or "unparsed")
    if u is not None and u.n and not math.isnan(u.value) and u.value > 0:
        return f"; {int(round(u.value * u.n))} of {u.n} outputs unparsed"
    return ""


def _bound(claim: Claim, name: str, op: str, bound: float, m: MetricValue) -> Assessment:
    """`metric op bound` for a paper claim: the CI decides; without one, the point is at most
    'point estimate holds'."""
    fn = _OPS[op]
    base = dict(key=claim.key, kind=claim.kind, ours_name=name, ours=m, reference=bound,
                paper_value=claim.paper_value)
    point = fn(m.value, bound)
    ci = usable_ci(m)
    if claim.kind == "harness":
        return Assessment(status=PASS if point else FAIL, rule="point",
                          detail=f"{name} = {_fmt(m.value)} {op} {_fmt(bound)}" + ("" if point else " does not hold"),
                          **base)
    if point and op in (">=", "<=") and m.value == bound:
        point = False  # a tie is not the claimed effect (0 >= 0 says nothing)
    if ci is None:
        why = ("a CI over fewer than 5 seeds is not used" if m.ci95 is not None and m.unit == "seeds"
               else "no CI")
        if point:
            return Assessment(status=POINT_HOLDS, rule="point",
                              detail=f"{_fmt(m.value)} {op} {_fmt(bound)} for the point estimate ({why})", **base)
        return Assessment(status=NOT_REPRODUCED, rule="point",
                          detail=f"{_fmt(m.value)} {op} {_fmt(bound)} does not hold ({why})", **base)
    if op == "==":
        return Assessment(status=POINT_HOLDS if point else NOT_REPRODUCED, rule="point",
                          detail=f"{name} = {_fmt(m.value)} vs {_fmt(bound)} (an equality is not tested by an interval)",
                          **base)
    # the interval must exclude the bound itself: a CI touching it does not exclude the opposite
    # (and "x >= x" on a degenerate [0, 0] interval is no evidence)
    strict = _OPS[{">=": ">", "<=": "<"}.get(op, op)]
    side = f"{op} {_fmt(bound)}"
    if strict(ci[0], bound) and strict(ci[1], bound):
        return Assessment(status=REPRODUCED, rule="interval",
                          detail=f"95% CI {_ci_txt(ci)} lies wholly {side}", **base)
    if ci[0] == ci[1] == bound:
        return Assessment(status=NOT_REPRODUCED, rule="interval",
                          detail=f"no difference at all: 95% CI [{_fmt(bound)}, {_fmt(bound)}] (every unit equal)", **base)
    if not fn(ci[0], bound) and not fn(ci[1], bound):
        return Assessment(status=NOT_REPRODUCED, rule="interval",
                          detail=f"95% CI {_ci_txt(ci)} lies wholly on the other side of {_fmt(bound)}", **base)
    return Assessment(status=INCONCLUSIVE, rule="interval",
                      detail=f"95% CI {_ci_txt(ci)} covers both sides of {_fmt(bound)} (point estimate "
                             f"{_fmt(m.value)} {'holds' if point else 'does not hold'})", **base)


def _marginal(claim: Claim, names: tuple[str, str], op: str, a: MetricValue, b: MetricValue) -> Assessment:
    """`a op b` between two metrics: two marginal values. Their CIs are not a test of the
    difference, so this is at most 'point estimate holds'; a paired difference metric is needed."""
    fn = _OPS[op]
    point = fn(a.value, b.value)
    base = dict(key=claim.key, kind=claim.kind, ours_name=names[0], ours=a, reference=b.value,
                paper_value=claim.paper_value, rule="marginal")
    txt = f"{names[0]} = {_fmt(a.value)} {op} {names[1]} = {_fmt(b.value)}"
    if claim.kind == "harness":
        return Assessment(status=PASS if point else FAIL, detail=txt + ("" if point else " does not hold"), **base)
    hint = "two marginal values; 'reproduced' needs a paired difference metric"
    if point:
        return Assessment(status=POINT_HOLDS, detail=f"{txt} ({hint})", **base)
    ca, cb = usable_ci(a), usable_ci(b)
    if ca is not None and cb is not None and op in (">", ">=", "<", "<="):
        # the opposite holds with the marginal CIs apart: the claim is contradicted
        apart = ca[1] < cb[0] if op in (">", ">=") else ca[0] > cb[1]
        if not apart:
            return Assessment(status=INCONCLUSIVE, detail=f"{txt} does not hold for the point values; the CIs overlap ({hint})", **base)
    return Assessment(status=NOT_REPRODUCED, detail=f"{txt} does not hold", **base)


def _value(claim: Claim, m: MetricValue) -> Assessment:
    pv = float(claim.paper_value)  # type: ignore[arg-type]
    tol = float(claim.tolerance or 0.0)
    lo_b, hi_b = pv - tol, pv + tol
    base = dict(key=claim.key, kind=claim.kind, ours_name=claim.metric or "", ours=m, reference=pv, paper_value=pv)
    diff = m.value - pv
    inside = lo_b - 1e-12 <= m.value <= hi_b + 1e-12
    band = f"the paper's {_fmt(pv)} ± {tol:g}"
    if claim.kind == "harness":
        return Assessment(status=PASS if inside else FAIL, rule="point",
                          detail=f"ours − paper = {diff:+.3g} (tolerance {tol:g})", **base)
    ci = usable_ci(m)
    if ci is None:
        if inside:
            return Assessment(status=POINT_HOLDS, rule="point",
                              detail=f"point estimate within {band} (no CI)", **base)
        return Assessment(status=NOT_REPRODUCED, rule="point", detail=f"ours − paper = {diff:+.3g}, outside ± {tol:g} (no CI)", **base)
    if lo_b <= ci[0] and ci[1] <= hi_b:
        return Assessment(status=REPRODUCED, rule="band", detail=f"95% CI {_ci_txt(ci)} inside {band}", **base)
    if ci[1] < lo_b or ci[0] > hi_b:
        return Assessment(status=NOT_REPRODUCED, rule="band",
                          detail=f"95% CI {_ci_txt(ci)} wholly outside {band} (ours − paper = {diff:+.3g})", **base)
    return Assessment(status=INCONCLUSIVE, rule="band",
                      detail=f"95% CI {_ci_txt(ci)} overlaps {band} without lying inside it", **base)


def evaluate(claim: Claim, metrics: Mapping[str, MetricValue]) -> Assessment:
    """The verdict on `claim` from a completed run's metrics.

    Paper claims: "reproduced" only when the 95% CI of the tested metric excludes the opposite
    outcome; a CI covering both outcomes is "inconclusive"; a metric without a usable CI (none, or a
    bootstrap over fewer than 5 seeds) gives at most "point estimate holds"; a comparison of two
    marginal metrics likewise. Harness checks: pass/fail on the point value.
    """
    base = dict(key=claim.key, kind=claim.kind, paper_value=claim.paper_value)
    if claim.not_run:
        return Assessment(status=NOT_RUN, detail=claim.not_run, **base)
    if claim.check:
        m = _CHECK.match(claim.check)
        if not m:
            return Assessment(status=FAILED, detail=f"malformed check '{claim.check}'", **base)
        left, op, right = m.group(1), m.group(2), m.group(3)
        lnum, rnum = _number(left), _number(right)
        if lnum is not None and rnum is None:  # "0.7 <= x" reads as "x >= 0.7"
            left, right, op, lnum, rnum = right, left, _FLIP[op], None, lnum
        names = [n for n in (left, right) if _number(n) is None]
        for n in names:
            mv = metrics.get(n)
            if mv is None:
                return Assessment(status=NOT_RUN, detail=_absent(n), ours_name=n, **base)
            if mv.value is None or math.isnan(mv.value):
                return Assessment(status=FAILED, detail=_failure(claim, n, metrics), ours_name=n, **base)
        if rnum is not None and lnum is None:
            a = _bound(claim, left, op, rnum, metrics[left])
        elif lnum is None and rnum is None:
            a = _marginal(claim, (left, right), op, metrics[left], metrics[right])
        else:
            return Assessment(status=FAILED, detail=f"check '{claim.check}' names no metric", **base)
    elif claim.metric is None or claim.paper_value is None:
        return Assessment(status=FAILED, detail="claim has neither a check nor a metric with the paper's value", **base)
    else:
        mv = metrics.get(claim.metric)
        if mv is None:
            return Assessment(status=NOT_RUN, detail=_absent(claim.metric), ours_name=claim.metric, **base)
        if mv.value is None or math.isnan(mv.value):
            return Assessment(status=FAILED, detail=_failure(claim, claim.metric, metrics), ours_name=claim.metric, **base)
        a = _value(claim, mv)
    note = _unparsed_note(claim, metrics)
    return replace(a, detail=a.detail + note) if note else a


def evaluate_run(claims: tuple[Claim, ...] | list[Claim], metrics: Mapping[str, MetricValue],
                 run_status: str = "completed", error: str = "") -> list[Assessment]:
    """Every claim's verdict for a run: a run that did not complete tests nothing (a failed run's
    claims are "failed" with its error, an unfinished one's "not run")."""
    out = []
    for c in claims:
        if c.not_run or run_status == "completed":
            out.append(evaluate(c, metrics))
        elif run_status == "failed":
            out.append(Assessment(c.key, c.kind, FAILED, f"the run failed: {error}" if error else "the run failed",
                                  paper_value=c.paper_value))
        else:
            out.append(Assessment(c.key, c.kind, NOT_RUN, f"the run is {run_status}", paper_value=c.paper_value))
    return out


def tally(assessments: list[Assessment], scale: str = "") -> dict[str, int]:
    """The headline count of paper-claim verdicts. Harness checks, not-run claims and every verdict of
    a smoke-scale run (a plumbing check, not a test of the paper) are left out."""
    out: dict[str, int] = {}
    if scale == "smoke":
        return out
    for a in assessments:
        if a.kind != "claim" or a.status == NOT_RUN:
            continue
        out[a.status] = out.get(a.status, 0) + 1
    return out


def assess(claim: Claim, metrics: Mapping[str, MetricValue]) -> tuple[str, str]:
    """(status, detail) of a claim given a run's metrics (see `evaluate`)."""
    a = evaluate(claim, metrics)
    return a.status, a.detail
