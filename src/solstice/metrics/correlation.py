"""Pearson / Spearman correlation metrics with a paired percentile bootstrap CI, vectorised.

`correlation_metric(a, b, method)` gives the same kind of MetricValue as `stats.paired_metric` with a
correlation statistic, but resamples through scipy.stats.bootstrap's vectorised path (all resamples
of a batch at once), so CIs over tens of thousands of pairs, or many CIs over a few dozen, stay cheap.
Resamples on which the correlation is undefined (a constant resample) are left out of the interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.stats import DEFAULT_RESAMPLES, DEFAULT_SEED


def _rowwise_pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    xm = x - x.mean(axis=axis, keepdims=True)
    ym = y - y.mean(axis=axis, keepdims=True)
    num = (xm * ym).sum(axis=axis)
    den = np.sqrt((xm * xm).sum(axis=axis) * (ym * ym).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    return np.where(den > 1e-12 * np.maximum(np.abs(num), 1.0), np.clip(r, -1.0, 1.0), np.nan)


def _rowwise_spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    from scipy.stats import rankdata

    return _rowwise_pearson(rankdata(x, axis=axis), rankdata(y, axis=axis), axis=axis)


STATISTICS = {"pearson": _rowwise_pearson, "spearman": _rowwise_spearman}


def correlation(a: Sequence[float], b: Sequence[float], method: str = "pearson") -> float:
    """The correlation of two equally long vectors; NaN when either is constant or too short."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2:
        return math.nan
    return float(STATISTICS[method](x, y))


def correlation_metric(
    a: Sequence[float], b: Sequence[float], method: str = "pearson", *, n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95, seed: int = DEFAULT_SEED, higher_is_better: bool | None = True, note: str = "",
) -> MetricValue:
    """Correlation of paired values (NaN pairs dropped) with a seeded paired percentile bootstrap CI."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    value = correlation(x, y, method)
    if x.size < 3 or math.isnan(value):
        return MetricValue(value, int(x.size), None, higher_is_better, note or "too few pairs or a constant vector")
    batch = max(1, min(n_resamples, 2_000_000 // x.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x, y), STATISTICS[method], paired=True, vectorized=True, n_resamples=n_resamples,
                              batch=batch, method="percentile", random_state=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    dist = dist[~np.isnan(dist)]
    if dist.size == 0:
        return MetricValue(value, int(x.size), None, higher_is_better, note)
    tail = 50 * (1 - confidence)
    lo, hi = np.percentile(dist, [tail, 100 - tail])
    return MetricValue(value, int(x.size), (float(lo), float(hi)), higher_is_better, note)
