"""Two-parameter logistic item response theory (2PL IRT), fitted by regularised maximum likelihood.

    P(respondent j answers item i correctly) = sigmoid(alpha_i * (theta_j - beta_i))

`fit_2pl(scores)` takes a respondents x items 0/1 matrix (NaN = not asked) and returns abilities
theta, difficulties beta and discriminations alpha, maximising the log-likelihood plus Gaussian
log-priors on theta (N(0, 1), which fixes the scale's location and spread), beta (N(0, prior_beta^2))
and log alpha (N(0, prior_log_alpha^2)), with scipy's L-BFGS-B and the analytic gradient.
`most_discriminating(fit, k)` is the top-k items by alpha (ties: the lower index first).

Degenerate inputs: an item everyone (or no one) answers correctly has no discrimination signal and
its alpha stays near the prior's 1, its beta is pushed outward only as far as the prior allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solstice.errors import DataError


@dataclass
class IRTFit:
    theta: np.ndarray  # per respondent
    beta: np.ndarray  # per item (difficulty)
    alpha: np.ndarray  # per item (discrimination)
    nll: float
    converged: bool

    def prob(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.alpha[None, :] * (self.theta[:, None] - self.beta[None, :])))


def fit_2pl(scores: np.ndarray, *, prior_beta: float = 2.0, prior_log_alpha: float = 0.5,
            max_iter: int = 2000) -> IRTFit:
    from scipy.optimize import minimize
    from scipy.special import expit

    Y = np.asarray(scores, dtype=float)
    if Y.ndim != 2 or Y.shape[0] < 2 or Y.shape[1] < 1:
        raise DataError(f"IRT needs a respondents x items matrix with at least 2 respondents, got {Y.shape}")
    mask = ~np.isnan(Y)
    if not np.all(np.isin(Y[mask], (0.0, 1.0))):
        raise DataError("IRT scores must be 0, 1 or NaN")
    Y0 = np.where(mask, Y, 0.0)
    J, n_items = Y.shape

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return x[:J], x[J : J + n_items], x[J + n_items :]

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        th, b, la = unpack(x)
        a = np.exp(la)
        z = a[None, :] * (th[:, None] - b[None, :])
        # log p = -softplus(-z), log(1-p) = -softplus(z)
        ll = np.where(mask, Y0 * -np.logaddexp(0, -z) + (1 - Y0) * -np.logaddexp(0, z), 0.0).sum()
        r = np.where(mask, Y0 - expit(z), 0.0)  # dLL/dz
        g_th = (r * a[None, :]).sum(1)
        g_b = -(r * a[None, :]).sum(0)
        g_la = (r * z).sum(0)  # dz/dlog a = z
        lp = -0.5 * (th ** 2).sum() - 0.5 * ((b / prior_beta) ** 2).sum() - 0.5 * ((la / prior_log_alpha) ** 2).sum()
        g = np.concatenate([g_th - th, g_b - b / prior_beta ** 2, g_la - la / prior_log_alpha ** 2])
        return -(ll + lp), -g

    # start: abilities from row means, difficulties from column means (logits)
    p_row = (Y0.sum(1) + 0.5) / (mask.sum(1) + 1.0)
    p_col = (Y0.sum(0) + 0.5) / (mask.sum(0) + 1.0)
    x0 = np.concatenate([np.log(p_row / (1 - p_row)), -np.log(p_col / (1 - p_col)), np.zeros(n_items)])
    res = minimize(f, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    th, b, la = unpack(res.x)
    return IRTFit(th, b, np.exp(la), float(res.fun), bool(res.success))


def most_discriminating(fit: IRTFit, k: int) -> list[int]:
    """Indices of the k items with the largest alpha (stable: ties keep the lower index first)."""
    order = np.argsort(-fit.alpha, kind="stable")
    return [int(i) for i in order[: min(k, len(order))]]


def simulate_2pl(n_respondents: int, n_items: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scores, theta, beta, alpha) drawn from the 2PL model (theta, beta ~ N(0,1), alpha ~ logN(0, 0.5))."""
    rng = np.random.default_rng(seed)
    th = rng.normal(size=n_respondents)
    b = rng.normal(size=n_items)
    a = np.exp(rng.normal(0, 0.5, size=n_items))
    p = 1 / (1 + np.exp(-a[None, :] * (th[:, None] - b[None, :])))
    return (rng.random(p.shape) < p).astype(float), th, b, a
