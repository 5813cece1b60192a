"""Probe evaluation: in-distribution (one split or k-fold), out-of-distribution (train on one set,
test on every other) and per-layer curves (paper §5, Evaluation (1) and (2)).

Everything is computed from arrays: per question set, the probe-target SE, correctness, the
hidden states at TBG and SLT ([n, L+1, d]) and the baselines' risk scores. Higher scores are
riskier throughout; the hallucination label is `is_error = 1 - correct`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solstice.metrics.classification import safe_auroc
from solstice.papers.semantic_entropy_probes.probes import (
    SemanticEntropyProbe,
    best_layer_range,
    best_split,
    binarize,
    probe_labels,
)

PROBES = (("sep", "se"), ("acc_probe", "correct"))  # (name, target)


@dataclass
class SetData:
    name: str
    se: np.ndarray
    correct: np.ndarray
    states: dict[str, np.ndarray] = field(default_factory=dict)  # position -> [n, L+1, d]

    @property
    def is_error(self) -> np.ndarray:
        return 1 - self.correct.astype(int)

    def __len__(self) -> int:
        return int(self.se.shape[0])


@dataclass(frozen=True)
class ProbeSettings:
    min_layers: int = 5
    C: float = 1.0
    max_iter: int = 2000
    test_fraction: float = 0.1
    val_fraction: float = 0.2
    cv_folds: int = 0
    seed: int = 42
    drop_middle: float = 0.0


def train_val_test(n: int, s: ProbeSettings) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Index triples (train, val, test): one split (test first, then val from the rest, as the
    paper) or, with cv_folds = k >= 2, k folds whose union of test parts is every index."""
    from sklearn.model_selection import KFold, train_test_split

    idx = np.arange(n)
    if n < 4:
        return []
    if s.cv_folds >= 2:
        k = min(s.cv_folds, n)
        out = []
        for rest, test in KFold(k, shuffle=True, random_state=s.seed).split(idx):
            tr, va = train_test_split(rest, test_size=s.val_fraction, random_state=s.seed)
            out.append((np.sort(tr), np.sort(va), np.sort(test)))
        return out
    rest, test = train_test_split(idx, test_size=s.test_fraction, random_state=s.seed)
    tr, va = train_test_split(rest, test_size=s.val_fraction, random_state=s.seed)
    return [(np.sort(tr), np.sort(va), np.sort(test))]


def train_val(n: int, s: ProbeSettings) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    tr, va = train_test_split(np.arange(n), test_size=s.val_fraction, random_state=s.seed)
    return np.sort(tr), np.sort(va)


def _layer_probes(states: np.ndarray, se: np.ndarray, correct: np.ndarray, target: str, threshold: float,
                  s: ProbeSettings) -> list[SemanticEntropyProbe]:
    return [SemanticEntropyProbe((layer,), target=target, threshold=threshold, C=s.C, max_iter=s.max_iter)
            .fit(states, se=se, correct=correct) for layer in range(states.shape[1])]


@dataclass
class FitResult:
    probe: SemanticEntropyProbe
    val_auroc: list[float]
    layer_probes: list[SemanticEntropyProbe]


def fit_selected(states: np.ndarray, se: np.ndarray, correct: np.ndarray, target: str, position: str,
                 train: np.ndarray, val: np.ndarray, threshold: float, s: ProbeSettings) -> FitResult:
    """Per-layer probes on train; the contiguous range (>= min_layers) with the best mean val
    AUROC; one probe on that range, fitted on train. With `drop_middle` > 0 a SEP's training
    questions whose SE lies within that distance of the threshold are left out (trinarisation)."""
    if target == "se" and s.drop_middle > 0:
        train = train[np.abs(se[train] - threshold) >= s.drop_middle]
    layer_probes = _layer_probes(states[train], se[train], correct[train], target, threshold, s)
    y_val = probe_labels(target, se[val], correct[val], threshold)
    val_auc = [safe_auroc(y_val, p.risk(states[val]), warn=False).value for p in layer_probes]
    lo, hi = best_layer_range(val_auc, s.min_layers)
    probe = SemanticEntropyProbe(tuple(range(lo, hi + 1)), position, target, threshold, s.C, s.max_iter)
    probe.fit(states[train], se=se[train], correct=correct[train])
    probe.meta["val_layer_auroc"] = [None if math.isnan(v) else round(float(v), 4) for v in val_auc]
    return FitResult(probe, val_auc, layer_probes)


def in_distribution(d: SetData, position: str, s: ProbeSettings) -> dict[str, Any]:
    """Out-of-fold (or test-split) predictions of both probe kinds on one set.

    Returns test indices, per-probe risks of the selected-range probe and of every single-layer
    probe, the SE labels under each fold's own threshold, and the chosen layer ranges."""
    states = d.states[position]
    folds = train_val_test(len(d), s)
    n_layers = states.shape[1]
    test_all = np.concatenate([f[2] for f in folds]) if folds else np.zeros(0, dtype=int)
    out: dict[str, Any] = {"test": test_all, "y_se": np.zeros(test_all.size, dtype=int), "ranges": {},
                           "thresholds": []}
    for name, _ in PROBES:
        out[name] = np.full(test_all.size, np.nan)
        out[f"{name}_layers"] = np.full((n_layers, test_all.size), np.nan)
        out["ranges"][name] = []
    pos = 0
    for train, val, test in folds:
        gamma = best_split(d.se[train])
        out["thresholds"].append(gamma)
        sl = slice(pos, pos + test.size)
        out["y_se"][sl] = binarize(d.se[test], gamma)
        for name, target in PROBES:
            fr = fit_selected(states, d.se, d.correct, target, position, train, val, gamma, s)
            out[name][sl] = fr.probe.risk(states[test])
            for layer, lp in enumerate(fr.layer_probes):
                out[f"{name}_layers"][layer, sl] = lp.risk(states[test])
            out["ranges"][name].append([fr.probe.layers[0], fr.probe.layers[-1]])
        pos += test.size
    return out


def out_of_distribution(train_set: SetData, test_sets: Sequence[SetData], position: str,
                        s: ProbeSettings) -> dict[str, dict[str, Any]]:
    """Probes fitted on `train_set` (range chosen on its val split), scored on each test set."""
    states = train_set.states[position]
    tr, va = train_val(len(train_set), s)
    gamma = best_split(train_set.se[tr])
    fits = {name: fit_selected(states, train_set.se, train_set.correct, target, position, tr, va, gamma, s)
            for name, target in PROBES}
    res: dict[str, dict[str, Any]] = {}
    for t in test_sets:
        res[t.name] = {"y_se": binarize(t.se, gamma), "threshold": gamma,
                       **{name: f.probe.risk(t.states[position]) for name, f in fits.items()},
                       "ranges": {name: [f.probe.layers[0], f.probe.layers[-1]] for name, f in fits.items()}}
    return res


def fit_final(sets: Sequence[SetData], position: str, s: ProbeSettings) -> dict[str, SemanticEntropyProbe]:
    """Probes on the pooled sets (train/val split of the pool) for saving and for stress tests."""
    states = np.concatenate([d.states[position] for d in sets])
    se = np.concatenate([d.se for d in sets])
    correct = np.concatenate([d.correct for d in sets])
    tr, va = train_val(len(se), s)
    gamma = best_split(se[tr])
    return {name: fit_selected(states, se, correct, target, position, tr, va, gamma, s).probe
            for name, target in PROBES}


def layer_curve(y: np.ndarray, layer_risks: np.ndarray) -> list[float]:
    """AUROC per layer of [L+1, n] risks against labels y (NaN where undefined)."""
    return [safe_auroc(y, r, warn=False).value for r in layer_risks]
