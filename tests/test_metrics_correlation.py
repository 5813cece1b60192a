"""correlation_metric: values equal scipy's, CIs cover them, degenerate inputs give no CI."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from solstice.metrics.correlation import correlation, correlation_metric
from solstice.metrics.stats import paired_metric


def test_values_match_scipy_and_ci_matches_the_generic_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = 0.5 * x + rng.normal(size=300)
    assert correlation(x, y) == pytest.approx(pearsonr(x, y).statistic)
    assert correlation(x, y, "spearman") == pytest.approx(spearmanr(x, y).statistic)
    m = correlation_metric(x, y)
    slow = paired_metric(x, y, lambda a, b: pearsonr(a, b).statistic)
    assert m.ci95[0] < m.value < m.ci95[1] and m.n == 300
    assert m.ci95 == pytest.approx(slow.ci95, abs=0.03)  # same percentile bootstrap, other resamples
    assert correlation_metric(x, y).ci95 == m.ci95  # seeded


def test_ties_nans_and_degenerate_input():
    assert correlation([1, 2, 2, 3], [1, 3, 3, 4], "spearman") == pytest.approx(1.0)
    m = correlation_metric([1, 2, np.nan, 4, 5], [2, 4, 1, 8, 10])
    assert m.n == 4 and m.value == pytest.approx(1.0)
    assert np.isnan(correlation([1, 1, 1], [1, 2, 3])) and correlation_metric([1, 1, 1], [1, 2, 3]).ci95 is None
    b = correlation_metric([0, 0, 0, 0, 1, 1], [0, 0, 1, 0, 1, 1])  # binary: constant resamples are skipped
    assert b.ci95 is not None and -1 <= b.ci95[0] <= b.ci95[1] <= 1
