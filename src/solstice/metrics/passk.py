"""Unbiased pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

For a task with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k), computed as
1 - prod_{i=n-c+1..n} (1 - k/i) for numerical stability; it is 1 when n - c < k. The benchmark
score is the mean over tasks, defined only when every task has at least k samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.stats import DEFAULT_SEED, metric_from_values


def pass_at_k(n: int, c: int, k: int) -> float:
    if n < 1 or k < 1 or c < 0 or c > n:
        raise ValueError(f"pass@k needs 1 <= k, 0 <= c <= n (got n={n}, c={c}, k={k})")
    if k > n:
        return math.nan
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_metric(counts: Sequence[tuple[int, int]], k: int, *, seed: int = DEFAULT_SEED,
                     note: str = "") -> MetricValue:
    """Mean pass@k over tasks given (n, c) per task, with a bootstrap 95% CI over tasks. NaN (with
    a note) when some task has fewer than k samples."""
    if not counts:
        return MetricValue(math.nan, 0, None, True, note or "no tasks")
    if min(n for n, _ in counts) < k:
        return MetricValue(math.nan, len(counts), None, True, f"some task has fewer than {k} samples")
    return metric_from_values([pass_at_k(n, c, k) for n, c in counts], seed=seed, note=note)


def valid_ks(counts: Sequence[tuple[int, int]], ks: Sequence[int] = (1, 5, 10)) -> list[int]:
    """The k of `ks` that every task's sample count allows."""
    if not counts:
        return []
    low = min(n for n, _ in counts)
    return [k for k in ks if k <= low]
