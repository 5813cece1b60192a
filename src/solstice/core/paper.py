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
from dataclasses import dataclass, field
from typing import Any

from solstice.core.config import BaseConfig
from solstice.core.types import MetricValue

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RUN = "reproduced", "partly", "not reproduced", "not run"


@dataclass(frozen=True)
class Role:
    """A model role (target, judge, mutator, ...): its default spec and needed capabilities."""

    default: str = "default"
    requires: frozenset[str] = frozenset({"generate"})
    description: str = ""
    # capabilities the resolved config adds (e.g. `vision` when images are attached), checked
    # with `requires` before the run starts
    requires_for: Callable[[Any], frozenset[str]] | None = None


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how our metrics test it.

    A value claim names our `metric` and the paper's `paper_value`; it is reproduced when our value
    lies within `tolerance` of it (or the paper's value lies in our 95% CI), partly when the CI
    reaches the tolerance band, else not reproduced. A relational claim gives `check`, e.g.
    "sep_ood_auroc > acc_probe_ood_auroc" or "se_auroc >= 0.7": reproduced when it holds with
    the CIs apart (or the CI above the bound), partly when it holds for the point values only.
    `not_run` states why a claim is not run here (e.g. a 70B model or a paid API is needed).
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


def _bounds(m: MetricValue) -> tuple[float, float]:
    if m.ci95 is None or any(math.isnan(c) for c in m.ci95):
        return (m.value, m.value)
    return (m.ci95[0], m.ci95[1])


def _operand(tok: str, metrics: Mapping[str, MetricValue]) -> MetricValue | None:
    if tok in metrics:
        return metrics[tok]
    try:
        v = float(tok)
    except ValueError:
        return None
    return MetricValue(v, 0, None)


def assess(claim: Claim, metrics: Mapping[str, MetricValue]) -> tuple[str, str]:
    """(status, detail) of a claim given a run's metrics."""
    if claim.not_run:
        return NOT_RUN, claim.not_run
    if claim.check:
        m = _CHECK.match(claim.check)
        if not m:
            return NOT_RUN, f"malformed check '{claim.check}'"
        left, op, right = _operand(m.group(1), metrics), m.group(2), _operand(m.group(3), metrics)
        if left is None or right is None:
            return NOT_RUN, f"metric missing for '{claim.check}'"
        if math.isnan(left.value) or math.isnan(right.value):
            return NOT_RUN, f"undefined value in '{claim.check}'"
        fn = _OPS[op]
        if not fn(left.value, right.value):
            return NOT_REPRODUCED, f"{left.value:.3g} {op} {right.value:.3g} does not hold"
        (llo, lhi), (rlo, rhi) = _bounds(left), _bounds(right)
        strict = fn(llo, rhi) if op in (">", ">=") else fn(lhi, rlo) if op in ("<", "<=") else True
        return (REPRODUCED, "holds beyond the CIs") if strict else (PARTLY, "holds for point values, CIs overlap")
    if claim.metric is None or claim.paper_value is None:
        return NOT_RUN, "claim has no metric"
    mv = metrics.get(claim.metric)
    if mv is None or mv.value is None or math.isnan(mv.value):
        return NOT_RUN, f"metric '{claim.metric}' not produced"
    tol = claim.tolerance or 0.0
    diff = mv.value - claim.paper_value
    lo, hi = _bounds(mv)
    if abs(diff) <= tol or lo <= claim.paper_value <= hi:
        return REPRODUCED, f"|ours - paper| = {abs(diff):.3g}"
    if lo - tol <= claim.paper_value <= hi + tol:
        return PARTLY, f"CI within tolerance {tol:g} of the paper's value"
    return NOT_REPRODUCED, f"ours - paper = {diff:+.3g}"
