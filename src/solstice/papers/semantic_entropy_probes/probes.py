"""Linear probes on hidden states (paper §3, method F and G).

    best_split(se)                      the threshold gamma of the paper's "best split" rule
    SemanticEntropyProbe                StandardScaler + LogisticRegression on the concatenated
                                        states of a contiguous layer range at one position;
                                        fit / predict_proba / save / load (JSON + npz)
    best_layer_range(aurocs, min_len)   the contiguous range (>= min_len layers) of highest mean
                                        AUROC (evaluate.fit_selected picks it on *val*; the
                                        reference picks it on test)

A SEP predicts p(high SE); an accuracy probe predicts p(correct). Both expose
`risk(states)` = the probability of the risky class (high SE, or an error), so that a higher
score is riskier for both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solstice.errors import ConfigError, DataError

TARGETS = ("se", "correct")
POSITIONS = ("tbg", "slt")


def best_split(se: Sequence[float], n_thresholds: int = 100) -> float:
    """The gamma in linspace(1e-10, max SE, n) that minimises the within-group sum of squares
    of SE below and above it (the paper's binarisation rule). Label = 1[SE > gamma]."""
    x = np.asarray(se, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise DataError("best_split needs at least one semantic entropy value")
    top = float(x.max())
    if top <= 1e-10:
        return 1e-10
    best, best_cost = 1e-10, math.inf
    for g in np.linspace(1e-10, top, n_thresholds):
        lo, hi = x[x <= g], x[x > g]
        cost = (((lo - lo.mean()) ** 2).sum() if lo.size else 0.0) + (((hi - hi.mean()) ** 2).sum() if hi.size else 0.0)
        if cost < best_cost - 1e-12:
            best, best_cost = float(g), cost
    return best


def binarize(se: Sequence[float], gamma: float) -> np.ndarray:
    return (np.asarray(se, dtype=float) > gamma).astype(int)


@dataclass
class SemanticEntropyProbe:
    """A logistic-regression probe on the hidden states of `layers` at `position`.

    `target` is "se" (a SEP: label 1 = high semantic entropy, SE > `threshold`) or "correct" (an
    accuracy probe: label 1 = correct). `predict_proba(states)` takes states [n, L+1, d] (all
    layers at this probe's position) and returns p(label 1); `risk(states)` is p(high SE) for a
    SEP and 1 - p(correct) for an accuracy probe.
    """

    layers: tuple[int, ...]
    position: str = "slt"
    target: str = "se"
    threshold: float | None = None
    C: float = 1.0
    max_iter: int = 2000
    standardize: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    coef_: np.ndarray | None = None
    intercept_: float = 0.0
    constant_: float | None = None  # set when the training labels had one class

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"probe target must be one of {TARGETS}, got '{self.target}'")
        if self.position not in POSITIONS:
            raise ConfigError(f"probe position must be one of {POSITIONS}, got '{self.position}'")
        self.layers = tuple(int(x) for x in self.layers)
        if not self.layers:
            raise ConfigError("a probe needs at least one layer")

    # -- features --------------------------------------------------------------------------------
    def features(self, states: np.ndarray) -> np.ndarray:
        s = np.asarray(states)
        if s.ndim == 2:  # one example
            s = s[None]
        if s.ndim != 3:
            raise DataError(f"probe input must be [n, layers, hidden], got shape {s.shape}")
        if max(self.layers) >= s.shape[1]:
            raise DataError(f"probe reads layer {max(self.layers)} but the states have {s.shape[1]} layers")
        return s[:, list(self.layers), :].reshape(s.shape[0], -1).astype(np.float64)

    def labels(self, *, se: Sequence[float] | None = None, correct: Sequence[bool] | None = None) -> np.ndarray:
        if self.target == "se":
            if se is None or self.threshold is None:
                raise ConfigError("a SEP needs SE values and a threshold")
            return binarize(se, self.threshold)
        if correct is None:
            raise ConfigError("an accuracy probe needs correctness labels")
        return np.asarray(correct, dtype=int)

    # -- fit / predict ---------------------------------------------------------------------------
    def fit(self, states: np.ndarray, *, se: Sequence[float] | None = None,
            correct: Sequence[bool] | None = None) -> SemanticEntropyProbe:
        """Fit on states [n, L+1, d]. For a SEP without a threshold, the best-split threshold of
        the training SE is used."""
        from sklearn.linear_model import LogisticRegression

        if self.target == "se" and self.threshold is None:
            if se is None:
                raise ConfigError("a SEP needs SE values to fit")
            self.threshold = best_split(se)
        x = self.features(states)
        y = self.labels(se=se, correct=correct)
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{x.shape[0]} states but {y.shape[0]} labels")
        self.mean_ = x.mean(0) if self.standardize else np.zeros(x.shape[1])
        sd = x.std(0) if self.standardize else np.ones(x.shape[1])
        self.scale_ = np.where(sd > 0, sd, 1.0)
        if np.unique(y).size < 2:
            self.constant_ = float(y[0]) if y.size else 0.5
            self.coef_, self.intercept_ = np.zeros(x.shape[1]), 0.0
            return self
        self.constant_ = None
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter)
        lr.fit((x - self.mean_) / self.scale_, y)
        self.coef_, self.intercept_ = lr.coef_[0].astype(np.float64), float(lr.intercept_[0])
        return self

    def decision_function(self, states: np.ndarray) -> np.ndarray:
        if self.coef_ is None or self.mean_ is None or self.scale_ is None:
            raise ConfigError("the probe is not fitted")
        x = self.features(states)
        if x.shape[1] != self.coef_.shape[0]:
            raise DataError(f"probe expects {self.coef_.shape[0]} features, got {x.shape[1]}")
        return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, states: np.ndarray) -> np.ndarray:
        """p(label 1) per example."""
        if self.constant_ is not None:
            return np.full(self.features(states).shape[0], self.constant_)
        z = self.decision_function(states)
        return 1.0 / (1.0 + np.exp(-z))

    def risk(self, states: np.ndarray) -> np.ndarray:
        """Higher is riskier: p(high SE) for a SEP, 1 - p(correct) for an accuracy probe."""
        p = self.predict_proba(states)
        return p if self.target == "se" else 1.0 - p

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write `<path>.json` (settings) and `<path>.npz` (weights); returns the JSON path."""
        if self.coef_ is None:
            raise ConfigError("refusing to save an unfitted probe")
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".npz") else base
        base.parent.mkdir(parents=True, exist_ok=True)
        np.savez(base.with_suffix(".npz"), mean=self.mean_, scale=self.scale_, coef=self.coef_,
                 intercept=np.array([self.intercept_]))
        meta = {"format": "solstice-sep/1", "layers": list(self.layers), "position": self.position,
                "target": self.target, "threshold": self.threshold, "C": self.C, "max_iter": self.max_iter,
                "standardize": self.standardize, "constant": self.constant_, "meta": self.meta}
        base.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        return base.with_suffix(".json")

    @classmethod
    def load(cls, path: str | Path) -> SemanticEntropyProbe:
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".npz") else base
        js, npz = base.with_suffix(".json"), base.with_suffix(".npz")
        if not js.is_file() or not npz.is_file():
            raise DataError(f"probe files {js.name} and {npz.name} are not both present in {base.parent}")
        meta = json.loads(js.read_text())
        if meta.get("format") != "solstice-sep/1":
            raise DataError(f"{js} is not a saved SemanticEntropyProbe")
        w = np.load(npz)
        probe = cls(tuple(meta["layers"]), meta["position"], meta["target"], meta["threshold"], meta["C"],
                    meta["max_iter"], meta["standardize"], meta.get("meta", {}))
        probe.mean_, probe.scale_, probe.coef_ = w["mean"], w["scale"], w["coef"]
        probe.intercept_ = float(w["intercept"][0])
        probe.constant_ = meta.get("constant")
        return probe


# -- layer selection -----------------------------------------------------------------------------
def probe_labels(target: str, se: np.ndarray, correct: np.ndarray, threshold: float | None) -> np.ndarray:
    """The risky-class indicator a probe is scored against: high SE, or an error."""
    return binarize(se, threshold) if target == "se" else 1 - np.asarray(correct, dtype=int)


def best_layer_range(aurocs: Sequence[float], min_len: int = 5) -> tuple[int, int]:
    """(first, last) layer of the contiguous range with at least `min_len` layers and the highest
    mean AUROC (NaN layers count as 0.5). Ties go to the earliest, shortest range."""
    a = np.nan_to_num(np.asarray(aurocs, dtype=float), nan=0.5)
    n = a.size
    if n == 0:
        raise ConfigError("no layers to choose from")
    min_len = max(1, min(min_len, n))
    best, best_v = (0, min_len - 1), -math.inf
    for lo in range(n - min_len + 1):
        for hi in range(lo + min_len - 1, n):
            v = float(a[lo : hi + 1].mean())
            if v > best_v + 1e-12:
                best, best_v = (lo, hi), v
    return best
