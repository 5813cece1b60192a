"""MoA config grid, config losses and the multi-objective MILP (paper §4.2, spec steps 4–7).

    x[u, c] ∈ {0,1}   unit u (one KV head) takes config c;   y[l, c] ∈ {0,1}  layer l uses c
    Σ_c x[u, c] = 1                                   one config per unit
    0.9·B·|U| ≤ Σ d_c(n)·x[u, c] ≤ B·|U|              density band at every length n
    x[u, c] ≤ y[l(u), c],  Σ_c y[l, c] ≤ 2            ≤ 2 distinct rules per layer
    minimise Σ Ẑ_p[u, c]·x[u, c]                       Ẑ_p = Z_p / Σ Z_p (objectives comparable)

Solved with `scipy.optimize.milp` (HiGHS) behind the `PlanSolver` interface; the ε-constraint sweep
bounds every other objective by one of `bands` levels of its payoff-table range.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from solstice.errors import BackendError, ConfigError
from solstice.models.sparse_attention import BLOCK, density


def config_grid(max_p: int, extend: int, min_len: int, alpha_step: int, beta_step: float = 0.125) -> list[tuple[float, float]]:
    """(α, β) pairs: α from −min_len to max_p in `alpha_step`, β in [0, 1] by `beta_step`, kept when
    α + max_p·β ≤ max_p, α + extend·β ≤ extend and α + min_len·β > 0 (spec step 4)."""
    n_alpha = (max_p + min_len) // alpha_step + 1
    alphas = np.linspace(-min_len, max_p, n_alpha)
    betas = np.arange(0, 1 + 1e-9, beta_step)
    out = []
    for a in alphas:
        for b in betas:
            if a + max_p * b <= max_p and a + extend * b <= extend and a + min_len * b > 0:
                out.append((float(a), float(round(b, 6))))
    return out


def block_layout(alpha: float, beta: float, n: int, block: int = BLOCK) -> np.ndarray:
    """[n/b, n/b] bool: query block q sees key block k iff k == 0 or q − nb < k ≤ q."""
    nbk = n // block
    nb = max(1, math.floor(alpha / block + beta * n / block))
    q = np.arange(nbk)[:, None]
    k = np.arange(nbk)[None, :]
    return (k == 0) & (k <= q) | ((q - nb < k) & (k <= q))


def config_loss(units: np.ndarray, configs: list[tuple[float, float]], n: int, block: int = BLOCK) -> np.ndarray:
    """Z[u, c]: pooled influence of unit u outside config c's layout at length n. units [U, nb, nb]."""
    flat = units.reshape(units.shape[0], -1)
    kept = np.stack([block_layout(a, b, n, block).reshape(-1) for a, b in configs], axis=1).astype(units.dtype)
    return flat.sum(1, keepdims=True) - flat @ kept


@dataclass
class Problem:
    num_layers: int
    units_per_layer: int
    configs: list[tuple[float, float]]
    densities: dict[int, np.ndarray]          # length -> d_c(length) [C]
    budget: float
    lower_ratio: float = 0.9
    max_rules_per_layer: int = 2

    @property
    def num_units(self) -> int:
        return self.num_layers * self.units_per_layer

    @classmethod
    def build(cls, num_layers: int, units_per_layer: int, configs: list[tuple[float, float]],
              lengths: list[int], budget: float, **kw: Any) -> Problem:
        dens = {n: np.array([density(a, b, n) for a, b in configs]) for n in lengths}
        return cls(num_layers, units_per_layer, configs, dens, budget, **kw)


@dataclass
class Solution:
    assign: list[int]                 # config index per unit
    objective: float
    seconds: float
    status: str
    cpu_seconds: float = 0.0


class PlanSolver(Protocol):
    def solve(self, problem: Problem, cost: np.ndarray, bounds: list[tuple[np.ndarray, float]] | None = None,
              time_limit: float = 60.0) -> Solution: ...


class ScipyMilpSolver:
    """scipy.optimize.milp (HiGHS). No commercial solver needed."""

    def __init__(self, mip_rel_gap: float = 1e-4) -> None:
        self.gap = mip_rel_gap

    def solve(self, problem: Problem, cost: np.ndarray, bounds: list[tuple[np.ndarray, float]] | None = None,
              time_limit: float = 60.0) -> Solution:
        from scipy import sparse
        from scipy.optimize import Bounds, LinearConstraint, milp

        U, C, L = problem.num_units, len(problem.configs), problem.num_layers
        nx, ny = U * C, L * C
        rows: list[Any] = []
        lo: list[np.ndarray] = []
        hi: list[np.ndarray] = []
        # one config per unit
        rows.append(sparse.hstack([sparse.kron(sparse.eye(U), np.ones((1, C))), sparse.csr_matrix((U, ny))]))
        lo.append(np.ones(U))
        hi.append(np.ones(U))
        # density band at every length
        for d in problem.densities.values():
            rows.append(sparse.hstack([sparse.csr_matrix(np.tile(d, U)[None]), sparse.csr_matrix((1, ny))]))
            lo.append(np.array([problem.lower_ratio * problem.budget * U]))
            hi.append(np.array([problem.budget * U]))
        # x[u, c] − y[l(u), c] ≤ 0
        layer_of = np.repeat(np.arange(L), problem.units_per_layer)
        link_y = sparse.csr_matrix((-np.ones(nx), (np.arange(nx), (layer_of[:, None] * C + np.arange(C)).reshape(-1))),
                                   shape=(nx, ny))
        rows.append(sparse.hstack([sparse.eye(nx), link_y]))
        lo.append(np.full(nx, -np.inf))
        hi.append(np.zeros(nx))
        # ≤ k rules per layer
        rows.append(sparse.hstack([sparse.csr_matrix((L, nx)), sparse.kron(sparse.eye(L), np.ones((1, C)))]))
        lo.append(np.full(L, -np.inf))
        hi.append(np.full(L, float(problem.max_rules_per_layer)))
        for coef, eps in bounds or []:
            rows.append(sparse.hstack([sparse.csr_matrix(coef.reshape(1, -1)), sparse.csr_matrix((1, ny))]))
            lo.append(np.array([-np.inf]))
            hi.append(np.array([eps]))
        A = sparse.vstack(rows).tocsr()
        c = np.concatenate([cost.reshape(-1), np.zeros(ny)])
        t0, c0 = time.perf_counter(), time.process_time()
        res = milp(c, constraints=LinearConstraint(A, np.concatenate(lo), np.concatenate(hi)),
                   integrality=np.ones(nx + ny), bounds=Bounds(0, 1),
                   options={"time_limit": time_limit, "mip_rel_gap": self.gap})
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        if res.x is None and res.status != 2:
            raise BackendError(f"HiGHS found no plan within {time_limit:g} s ({res.message.strip()}); "
                               "raise solve_time_limit")
        if res.x is None:
            raise ConfigError(f"no MoA plan meets the density budget {problem.budget:g} (band "
                              f"[{problem.lower_ratio * problem.budget:g}, {problem.budget:g}]) at lengths "
                              f"{sorted(problem.densities)} with this config grid ({res.message.strip()})")
        x = res.x[:nx].reshape(U, C)
        assign = [int(i) for i in x.argmax(1)]
        status = "optimal" if res.status == 0 else f"status {res.status}: {res.message.strip()}"
        return Solution(assign, float(cost.reshape(U, C)[np.arange(U), assign].sum()), secs, status, cpu)


def check_solution(problem: Problem, assign: list[int], tol: float = 1e-6) -> list[str]:
    """Violated constraints of an assignment (empty when feasible)."""
    errs = []
    U = problem.num_units
    if len(assign) != U:
        errs.append(f"{len(assign)} assignments for {U} units")
    for n, d in problem.densities.items():
        tot = float(d[assign].sum())
        if tot > problem.budget * U + tol or tot < problem.lower_ratio * problem.budget * U - tol:
            errs.append(f"density {tot / U:.4f} at n={n} outside the band")
    per = problem.units_per_layer
    for layer in range(problem.num_layers):
        used = set(assign[layer * per : (layer + 1) * per])
        if len(used) > problem.max_rules_per_layer:
            errs.append(f"layer {layer} uses {len(used)} rules")
    return errs


def brute_force(problem: Problem, cost: np.ndarray) -> tuple[list[int], float] | None:
    """Exhaustive optimum (tiny problems only, for tests)."""
    best = None
    C = len(problem.configs)
    for assign in itertools.product(range(C), repeat=problem.num_units):
        a = list(assign)
        if check_solution(problem, a):
            continue
        v = float(cost[np.arange(problem.num_units), a].sum())
        if best is None or v < best[1] - 1e-12:
            best = (a, v)
    return best


def normalise(z: np.ndarray) -> np.ndarray:
    tot = float(z.sum())
    return z / tot if tot > 0 else z


def pareto_sweep(problem: Problem, objectives: dict[int, np.ndarray], solver: PlanSolver | None = None,
                 bands: int = 4, time_limit: float = 60.0) -> list[dict[str, Any]]:
    """ε-constraint sweep over the normalised objectives (one per profile length). Returns the
    non-dominated, de-duplicated plans: {"assign", "objectives" {length: value}, "primary", "eps"}."""
    solver = solver or ScipyMilpSolver()
    keys = sorted(objectives)
    z = {p: normalise(objectives[p]) for p in keys}
    U = problem.num_units

    def values(assign: list[int]) -> dict[int, float]:
        return {p: float(z[p][np.arange(U), assign].sum()) for p in keys}

    found: list[dict[str, Any]] = []
    payoff = []
    for p in keys:
        sol = solver.solve(problem, z[p], time_limit=time_limit)
        payoff.append(values(sol.assign))
        found.append({"assign": sol.assign, "objectives": payoff[-1], "primary": p, "eps": {},
                      "status": sol.status, "seconds": sol.seconds})
    lo = {q: min(row[q] for row in payoff) for q in keys}
    hi = {q: max(row[q] for row in payoff) for q in keys}
    if len(keys) > 1:
        for p in keys:
            others = [q for q in keys if q != p]
            for levels in itertools.product(range(1, bands + 1), repeat=len(others)):
                eps = {q: lo[q] + (hi[q] - lo[q]) * k / bands for q, k in zip(others, levels)}
                try:
                    sol = solver.solve(problem, z[p], [(z[q], eps[q] + 1e-9) for q in others], time_limit=time_limit)
                except ConfigError:
                    continue
                found.append({"assign": sol.assign, "objectives": values(sol.assign), "primary": p, "eps": eps,
                              "status": sol.status, "seconds": sol.seconds})
    return non_dominated(found)


def non_dominated(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    uniq: dict[tuple[int, ...], dict[str, Any]] = {}
    for pl in plans:
        uniq.setdefault(tuple(pl["assign"]), pl)
    items = list(uniq.values())
    keep = []
    for a in items:
        va = a["objectives"]
        dominated = any(
            all(b["objectives"][k] <= va[k] + 1e-12 for k in va) and any(b["objectives"][k] < va[k] - 1e-12 for k in va)
            for b in items if b is not a
        )
        if not dominated:
            keep.append(a)
    return keep


def assignment_to_plan(problem: Problem, assign: list[int], n_rep: int) -> Any:
    from solstice.models.sparse_attention import SparsePlan

    per = problem.units_per_layer
    al, be = [], []
    for layer in range(problem.num_layers):
        cs = [problem.configs[c] for c in assign[layer * per : (layer + 1) * per]]
        al.append(tuple(a for a, _ in cs))
        be.append(tuple(b for _, b in cs))
    return SparsePlan(tuple(al), tuple(be), n_rep)
