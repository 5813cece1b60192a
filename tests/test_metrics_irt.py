"""2PL IRT (solstice.metrics.irt): recovery of simulated parameters, top-k by discrimination, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from solstice.metrics.irt import fit_2pl, most_discriminating, simulate_2pl


@pytest.mark.parametrize("seed", [0, 1])
def test_irt_recovers_simulated_parameters(seed):
    Y, th, b, a = simulate_2pl(200, 40, seed=seed)
    fit = fit_2pl(Y)
    assert fit.converged
    assert spearmanr(fit.beta, b)[0] >= 0.9
    assert spearmanr(fit.alpha, a)[0] >= 0.7
    assert spearmanr(fit.theta, th)[0] >= 0.85


def test_irt_top_k_is_by_discrimination_and_missing_cells_are_ignored():
    Y, _, _, _ = simulate_2pl(60, 12, seed=3)
    fit = fit_2pl(Y)
    top = most_discriminating(fit, 4)
    assert top == [int(i) for i in np.argsort(-fit.alpha, kind="stable")[:4]]
    Y2 = Y.copy()
    Y2[0, 0] = np.nan
    assert fit_2pl(Y2).converged
    with pytest.raises(Exception, match="0, 1 or NaN"):
        fit_2pl(Y * 2)


