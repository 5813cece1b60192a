"""Reference models of risky choice that the project computes: expected value (EV), expected utility
(EU, power utility) and cumulative prospect theory (CPT, Tversky & Kahneman 1992), each with a
logistic choice rule P(A) = sigmoid(phi * (V(A) - V(B))), fitted by maximum likelihood with scipy on
a training split of human choice rates.

    EV   V = sum p x                                   params: phi
    EU   V = sum p u(x),  u(x) = sign(x) |x|^alpha       params: alpha, phi
    CPT  V = sum pi+ v(x) + sum pi- v(x)                 params: alpha, beta, lambda, gamma, delta, phi
         v(x) = x^alpha (x >= 0), -lambda (-x)^beta (x < 0)
         rank-dependent decision weights pi from w(p) = p^c / (p^c + (1-p)^c)^(1/c), c = gamma (gains),
         delta (losses)

EV and EU are nested in CPT (alpha = beta, lambda = gamma = delta = 1). Gambles are padded to a
common number of outcomes (probability 0 pads contribute nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from solstice.papers.llm_rationality.gambles import Problem

PARAMS = {
    "ev": ("phi",),
    "eu": ("alpha", "phi"),
    "cpt": ("alpha", "beta", "lambda", "gamma", "delta", "phi"),
}
# Bounds keep the TK weighting function monotone (c >= 0.28) and the fit away from degenerate corners.
BOUNDS = {"alpha": (0.05, 1.5), "beta": (0.05, 1.5), "lambda": (0.1, 5.0), "gamma": (0.28, 2.0),
          "delta": (0.28, 2.0), "phi": (1e-4, 20.0)}
STARTS = {
    "ev": [{"phi": 0.1}, {"phi": 1.0}],
    "eu": [{"alpha": 0.8, "phi": 0.2}, {"alpha": 0.5, "phi": 1.0}],
    "cpt": [
        {"alpha": 0.88, "beta": 0.88, "lambda": 2.25, "gamma": 0.61, "delta": 0.69, "phi": 0.2},
        {"alpha": 0.6, "beta": 0.6, "lambda": 1.0, "gamma": 1.0, "delta": 1.0, "phi": 0.5},
        {"alpha": 1.0, "beta": 1.0, "lambda": 1.5, "gamma": 0.8, "delta": 0.8, "phi": 0.05},
    ],
}


@dataclass(frozen=True)
class Gambles:
    """Padded outcome arrays of gambles A and B: probabilities and payoffs, shape (N, K)."""

    pA: np.ndarray
    xA: np.ndarray
    pB: np.ndarray
    xB: np.ndarray

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> Gambles:
        def pad(gs):
            k = max(len(g) for g in gs)
            p = np.zeros((len(gs), k))
            x = np.zeros((len(gs), k))
            for i, g in enumerate(gs):
                for j, (pp, xx) in enumerate(g):
                    p[i, j], x[i, j] = pp, xx
            return p, x

        pA, xA = pad([pr.A for pr in problems])
        pB, xB = pad([pr.B for pr in problems])
        return cls(pA, xA, pB, xB)

    def ranked(self) -> tuple[_Ranked, _Ranked]:
        """CPT's parameter-free arrays, computed once per Gambles."""
        cached = self.__dict__.get("_ranked")
        if cached is None:
            cached = (_Ranked.of(self.pA, self.xA), _Ranked.of(self.pB, self.xB))
            object.__setattr__(self, "_ranked", cached)
        return cached


def _tk_weight(p: np.ndarray, c: float) -> np.ndarray:
    p = np.clip(p, 0.0, 1.0)
    pc = p**c
    return pc / (pc + (1.0 - p) ** c) ** (1.0 / c)


@dataclass(frozen=True)
class _Ranked:
    """Parameter-free parts of CPT for one side: magnitudes of gains and losses and the cumulative
    probabilities P(X >= x), P(X > x) (gains) and P(X <= x), P(X < x) (losses) per outcome."""

    gain: np.ndarray
    g_hi: np.ndarray
    g_lo: np.ndarray
    loss: np.ndarray
    l_hi: np.ndarray
    l_lo: np.ndarray

    @classmethod
    def of(cls, p: np.ndarray, x: np.ndarray) -> _Ranked:
        order = np.argsort(-x, axis=1, kind="stable")  # best first
        xs, ps = np.take_along_axis(x, order, 1), np.take_along_axis(p, order, 1)
        g = ps * (xs > 0)
        g_hi = np.cumsum(g, axis=1)
        gain = np.where(xs > 0, xs, 0.0)
        order = np.argsort(x, axis=1, kind="stable")  # worst first
        xs, ps = np.take_along_axis(x, order, 1), np.take_along_axis(p, order, 1)
        lo = ps * (xs < 0)
        l_hi = np.cumsum(lo, axis=1)
        loss = np.where(xs < 0, -xs, 0.0)
        return cls(gain, g_hi, g_hi - g, loss, l_hi, l_hi - lo)

    def value(self, alpha: float, beta: float, lam: float, gamma: float, delta: float) -> np.ndarray:
        pi_g = _tk_weight(self.g_hi, gamma) - _tk_weight(self.g_lo, gamma)
        pi_l = _tk_weight(self.l_hi, delta) - _tk_weight(self.l_lo, delta)
        return (pi_g * self.gain**alpha).sum(1) - lam * (pi_l * self.loss**beta).sum(1)


def cpt_value(p: np.ndarray, x: np.ndarray, alpha: float, beta: float, lam: float, gamma: float, delta: float) -> np.ndarray:
    """CPT value of each row's gamble (rank-dependent weighting of gains and of losses)."""
    return _Ranked.of(p, x).value(alpha, beta, lam, gamma, delta)


def values(kind: str, g: Gambles, params: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(V(A), V(B)) under a theory."""
    if kind == "ev":
        return (np.round(g.pA, 4) * g.xA).sum(1), (np.round(g.pB, 4) * g.xB).sum(1)
    if kind == "eu":
        a = params["alpha"]

        def u(x):
            return np.sign(x) * np.abs(x) ** a

        return (g.pA * u(g.xA)).sum(1), (g.pB * u(g.xB)).sum(1)
    if kind == "cpt":
        args = (params["alpha"], params["beta"], params["lambda"], params["gamma"], params["delta"])
        ra, rb = g.ranked()
        return ra.value(*args), rb.value(*args)
    raise ValueError(f"unknown theory '{kind}'")


def p_choose_a(kind: str, g: Gambles, params: dict[str, float]) -> np.ndarray:
    from scipy.special import expit

    va, vb = values(kind, g, params)
    return expit(params["phi"] * (va - vb))


@dataclass
class Fit:
    kind: str
    params: dict[str, float]
    nll: float
    n_train: int
    converged: bool
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"kind": self.kind, "params": self.params, "nll": self.nll, "n_train": self.n_train,
                "converged": self.converged}


def fit(kind: str, problems: Sequence[Problem], a_rates: Sequence[float] | None = None,
        weights: Sequence[float] | None = None, starts: Sequence[dict[str, float]] | None = None) -> Fit:
    """Maximum-likelihood fit of a theory to human rates of choosing A (default: each problem's
    1 - bRate), weighting rows by their participant count (default) — scipy L-BFGS-B from a few
    starting points, the best kept."""
    from scipy.optimize import minimize
    from scipy.special import expit

    names = PARAMS[kind]
    g = Gambles.of(problems)
    y = np.asarray([pr.a_rate for pr in problems] if a_rates is None else a_rates, dtype=float)
    w = np.asarray([max(pr.n, 1) for pr in problems] if weights is None else weights, dtype=float)
    w = w / w.sum()
    eps = 1e-9

    def unpack(theta: np.ndarray) -> dict[str, float]:
        d = dict(zip(names, theta))
        d["phi"] = float(np.exp(d["phi"]))
        return d

    def nll(theta: np.ndarray) -> float:
        d = unpack(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            va, vb = values(kind, g, d)
            p = expit(d["phi"] * (va - vb))
        p = np.clip(p, eps, 1 - eps)
        val = -float(np.sum(w * (y * np.log(p) + (1 - y) * np.log(1 - p))))
        return val if np.isfinite(val) else 1e6

    bounds = [BOUNDS[n] if n != "phi" else tuple(np.log(BOUNDS["phi"])) for n in names]
    best = None
    history = []
    for start in starts or STARTS[kind]:
        x0 = np.array([start[n] if n != "phi" else np.log(start[n]) for n in names])
        res = minimize(nll, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
        history.append({**unpack(res.x), "nll": float(res.fun)})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    return Fit(kind, {k: float(v) for k, v in unpack(best.x).items()}, float(best.fun), len(problems),
               bool(best.success), history)
