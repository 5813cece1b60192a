"""AUROC that never crashes, with bootstrap CIs, and its mean over several groups.

Orientation is explicit: `is_error` (or any positive class) is `y_true`, and the score is
`score_higher_is_riskier`. When `y_true` holds one class the AUROC is undefined: `safe_auroc`
returns NaN with `defined=False` and logs a warning instead of raising, and averages skip such
groups and say how many they skipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AUROC:
    value: float
    defined: bool
    n: int
    n_positive: int
    reason: str = ""


def _clean(y_true: Sequence[float], score: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"y_true has shape {y.shape} but score has {s.shape}")
    keep = ~(np.isnan(y) | np.isnan(s))
    return y[keep].astype(int), s[keep]


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count one half); NaN with one class."""
    pos, neg = s[y == 1], s[y == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def safe_auroc(y_true: Sequence[float], score_higher_is_riskier: Sequence[float], *, warn: bool = True) -> AUROC:
    """AUROC of a risk score against binary labels (1 = the risky class); NaN pairs are dropped.
    One class -> AUROC(nan, defined=False) and a logged warning, never an exception."""
    y, s = _clean(y_true, score_higher_is_riskier)
    npos = int(y.sum())
    if y.size == 0 or npos == 0 or npos == y.size:
        reason = "no examples" if y.size == 0 else f"y_true has one class ({npos}/{y.size} positive)"
        if warn:
            log.warning("AUROC undefined: %s", reason)
        return AUROC(math.nan, False, int(y.size), npos, reason)
    return AUROC(_auc(y, s), True, int(y.size), npos)


def _stratified_ci(groups: Sequence[tuple[np.ndarray, ...]], stat: Callable[..., float], n_resamples: int,
                   confidence: float, seed: int) -> tuple[float, float] | None:
    """Percentile CI of the mean over groups of `stat(*arrays)`, each resample redrawing rows within
    every group (the arrays of a group are resampled together); NaN statistics are left out."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        vals = []
        for arrays in groups:
            i = rng.integers(0, arrays[0].size, size=arrays[0].size)
            v = stat(*(a[i] for a in arrays))
            if not math.isnan(v):
                vals.append(v)
        if vals:
            stats.append(float(np.mean(vals)))
    alpha = 50 * (1 - confidence)
    return (float(np.percentile(stats, alpha)), float(np.percentile(stats, 100 - alpha))) if stats else None


def auroc_metric(y_true: Sequence[float], score_higher_is_riskier: Sequence[float], *,
                 n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = DEFAULT_SEED,
                 note: str = "") -> MetricValue:
    """AUROC with a percentile bootstrap CI (resamples with one class are skipped)."""
    return mean_auroc_metric([(y_true, score_higher_is_riskier)], n_resamples=n_resamples,
                             confidence=confidence, seed=seed, note=note)


def mean_auroc_metric(groups: Sequence[tuple[Sequence[float], Sequence[float]]], *,
                      n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = DEFAULT_SEED,
                      note: str = "") -> MetricValue:
    """Mean AUROC over groups (datasets, train/test pairs) with a stratified bootstrap CI: each
    resample redraws examples within every group. Groups whose AUROC is undefined are skipped
    and counted in the note."""
    data = [_clean(y, s) for y, s in groups]
    ok = [(y, s) for y, s in data if safe_auroc(y, s, warn=False).defined]
    skipped = len(data) - len(ok)
    msg = "; ".join(x for x in (note, f"{skipped} of {len(data)} groups undefined (one class)" if skipped else "") if x)
    if not ok:
        return MetricValue(math.nan, 0, None, True, msg or "undefined")
    value = float(np.mean([_auc(y, s) for y, s in ok]))
    ci = _stratified_ci(ok, _auc, n_resamples, confidence, seed)
    return MetricValue(value, int(sum(y.size for y, _ in ok)), ci, True, msg, "items")


def paired_difference_metric(groups: Sequence[tuple[Sequence[float], Sequence[float], Sequence[float]]], *,
                             n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                             seed: int = DEFAULT_SEED, note: str = "") -> MetricValue:
    """Mean over groups of AUROC(score_a) - AUROC(score_b) on the same labels, with a paired
    stratified bootstrap CI; each group is (y_true, score_a, score_b)."""
    data = []
    for y, a, b in groups:
        y_, a_, b_ = (np.asarray(v, dtype=float) for v in (y, a, b))
        keep = ~(np.isnan(y_) | np.isnan(a_) | np.isnan(b_))
        y_, a_, b_ = y_[keep].astype(int), a_[keep], b_[keep]
        if safe_auroc(y_, a_, warn=False).defined:
            data.append((y_, a_, b_))
    if not data:
        return MetricValue(math.nan, 0, None, True, note or "undefined")
    value = float(np.mean([_auc(y, a) - _auc(y, b) for y, a, b in data]))
    ci = _stratified_ci(data, lambda y, a, b: _auc(y, a) - _auc(y, b), n_resamples, confidence, seed)
    return MetricValue(value, int(sum(y.size for y, _, _ in data)), ci, True, note, "items")
