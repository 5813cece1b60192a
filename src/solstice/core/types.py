"""Value objects shared by every paper: samples, scores and metric values."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any


def content_id(*parts: Any) -> str:
    """A stable id from content: the first 12 hex digits of the sha256 of the parts' JSON."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Sample:
    """One item of a dataset. `id` is the dataset's own id, or a content hash when it has none."""

    id: str
    input: Any
    target: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A metric with its sample size and, where it applies, a 95% confidence interval."""

    value: float
    n: int
    ci95: tuple[float, float] | None = None
    higher_is_better: bool | None = True
    note: str = ""
    # What the CI resamples: "items", "seeds", "clusters", "pairs" ... ("" when there is no CI).
    unit: str = ""

    def to_json(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

        return {
            "value": clean(self.value),
            "n": int(self.n),
            "ci95": None if self.ci95 is None else [clean(self.ci95[0]), clean(self.ci95[1])],
            "higher_is_better": self.higher_is_better,
            **({"note": self.note} if self.note else {}),
            **({"unit": self.unit} if self.unit else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricValue:
        v = d.get("value")
        ci = d.get("ci95")
        nan = float("nan")
        return cls(
            value=nan if v is None else float(v),
            n=int(d.get("n", 0)),
            ci95=None if ci is None else (nan if ci[0] is None else ci[0], nan if ci[1] is None else ci[1]),
            higher_is_better=d.get("higher_is_better", True),
            note=d.get("note", ""),
            unit=d.get("unit", ""),
        )

    def fmt(self, digits: int = 3) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        s = f"{self.value:.{digits}f}"
        if self.ci95 is not None and not any(math.isnan(c) for c in self.ci95):
            s += f" [{self.ci95[0]:.{digits}f}, {self.ci95[1]:.{digits}f}]"
        return s
