"""Bootstrap confidence intervals and metric constructors.

Every headline number the project reports carries a 95% CI from a seeded percentile bootstrap
(scipy.stats.bootstrap), so two runs with the same seed print the same interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from solstice.core.types import MetricValue

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 12345


def _degenerate(values: np.ndarray) -> bool:
    return values.size < 2 or bool(np.all(values == values.flat[0]))


def bootstrap_ci(
    data: Sequence[float] | np.ndarray | tuple[np.ndarray, ...],
    statistic: Callable[..., float] = np.mean,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
    paired: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic` over `data`.

    `data` is one array, or a tuple of equally long arrays resampled together (paired) and passed
    to `statistic` as separate arguments, e.g. `(y_true, score)` for AUROC. A statistic that is
    undefined on a resample (NaN) is dropped from that resample's distribution.
    """
    from scipy import stats

    arrays = tuple(np.asarray(a, dtype=float) for a in data) if isinstance(data, tuple) else (
        np.asarray(data, dtype=float),
    )
    n = arrays[0].shape[0]
    if n == 0:
        return (math.nan, math.nan)
    if len(arrays) == 1 and _degenerate(arrays[0]):
        v = float(statistic(arrays[0]))
        return (v, v)
    if len(arrays) == 1 and statistic is np.mean:
        # Fast path for the most common case: vectorised resampling of the mean.
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_resamples, n))
        means = arrays[0][idx].mean(axis=1)
        lo, hi = np.percentile(means, [50 * (1 - confidence), 100 - 50 * (1 - confidence)])
        return (float(lo), float(hi))
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            arrays,
            statistic,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            paired=paired,
            vectorized=False,
            random_state=rng,
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(lo) or math.isnan(hi):
        # scipy returns NaN when some resamples are undefined: recompute, skipping those.
        vals = []
        for _ in range(n_resamples):
            i = rng.integers(0, n, size=n)
            v = statistic(*(a[i] for a in arrays))
            if not math.isnan(v):
                vals.append(v)
        if not vals:
            return (math.nan, math.nan)
        lo, hi = np.percentile(vals, [50 * (1 - confidence), 100 - 50 * (1 - confidence)])
    return (float(lo), float(hi))


def metric_from_values(
    values: Sequence[float],
    statistic: Callable[..., float] = np.mean,
    *,
    higher_is_better: bool | None = True,
    seed: int = DEFAULT_SEED,
    note: str = "",
) -> MetricValue:
    """A MetricValue for `statistic(values)` with a bootstrap CI; NaN entries are dropped."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return MetricValue(math.nan, 0, None, higher_is_better, note or "no values")
    return MetricValue(
        float(statistic(arr)), int(arr.size), bootstrap_ci(arr, statistic, seed=seed),
        higher_is_better, note,
    )


def mean_metric(values: Sequence[float], **kw) -> MetricValue:
    """Mean with a bootstrap 95% CI."""
    return metric_from_values(values, np.mean, **kw)


def proportion_metric(flags: Sequence[bool], **kw) -> MetricValue:
    """Proportion of true flags (e.g. accuracy, pass@1) with a bootstrap 95% CI."""
    return metric_from_values([1.0 if f else 0.0 for f in flags], np.mean, **kw)


def paired_metric(
    a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray, np.ndarray], float],
    *, higher_is_better: bool | None = True, seed: int = DEFAULT_SEED, note: str = "",
) -> MetricValue:
    """A statistic of two paired arrays (correlation, AUROC, ...) with a paired bootstrap CI."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 2:
        return MetricValue(math.nan, int(x.size), None, higher_is_better, note or "too few pairs")
    value = float(statistic(x, y))
    ci = bootstrap_ci((x, y), statistic, seed=seed)
    return MetricValue(value, int(x.size), ci, higher_is_better, note)


def paired_difference_metric(
    a: Sequence[float], b: Sequence[float], *, higher_is_better: bool | None = True,
    seed: int = DEFAULT_SEED, note: str = "", unit: str = "items",
) -> MetricValue:
    """mean(a - b) over paired units (the same items or seeds) with a bootstrap CI over the pairs.

    This is the statistic a comparison claim ("arm A beats arm B on the same questions") is
    tested with: write the claim as `check="<this metric> > 0"`. NaN pairs are dropped.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired arrays differ in length: {x.shape} vs {y.shape}")
    d = x - y
    d = d[~np.isnan(d)]
    if d.size == 0:
        return MetricValue(math.nan, 0, None, higher_is_better, note or "no pairs", unit)
    ci = bootstrap_ci(d, np.mean, seed=seed) if d.size >= 2 else None
    return MetricValue(float(d.mean()), int(d.size), ci, higher_is_better, note, unit if ci else "")


def two_sample_difference_metric(
    a: Sequence[float], b: Sequence[float], *, higher_is_better: bool | None = True,
    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, note: str = "", unit: str = "items",
) -> MetricValue:
    """mean(a) - mean(b) for two independent samples (different items, e.g. two length buckets),
    with a percentile bootstrap CI that resamples each sample on its own. For the same items in
    both arms use `paired_difference_metric`. NaN entries are dropped."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0:
        return MetricValue(math.nan, int(min(x.size, y.size)), None, higher_is_better, note or "an empty sample", "")
    value = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return MetricValue(value, int(x.size + y.size), None, higher_is_better, note)
    rng = np.random.default_rng(seed)
    dx = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    dy = y[rng.integers(0, y.size, size=(n_resamples, y.size))].mean(axis=1)
    lo, hi = np.percentile(dx - dy, [2.5, 97.5])
    return MetricValue(value, int(x.size + y.size), (float(lo), float(hi)), higher_is_better, note, unit)
