"""Continual-learning metrics from accuracy matrices (Du et al. 2024 §4; Lopez-Paz & Ranzato 2017).

R[i][j] is the accuracy on task j after training through task i (0-based; None where task j was
not evaluated). With T tasks:

    AA         = mean_j R[T-1][j]
    forgetting = mean_{j<T-1} ( max_{j<=i<T-1} R[i][j] - R[T-1][j] )
    BWT        = mean_{j<T-1} ( R[T-1][j] - R[j][j] )

For confidence intervals the same quantities are written as means of per-example values (each
task's examples weighted so every task counts equally), which a bootstrap resamples. The test
examples are the same at every stage and for every method, so differences between methods are
paired per example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Matrix = Sequence[Sequence[float | None]]


def average_accuracy(R: Matrix) -> float:
    last = R[-1]
    return sum(float(x) for x in last) / len(last)  # type: ignore[arg-type]


def forgetting(R: Matrix) -> float:
    T = len(R)
    if T < 2:
        return math.nan
    vals = [max(float(R[i][j]) for i in range(j, T - 1)) - float(R[T - 1][j]) for j in range(T - 1)]  # type: ignore[arg-type]
    return sum(vals) / len(vals)


def backward_transfer(R: Matrix) -> float:
    T = len(R)
    if T < 2:
        return math.nan
    return sum(float(R[T - 1][j]) - float(R[j][j]) for j in range(T - 1)) / (T - 1)  # type: ignore[arg-type]


def _weighted(groups: list[list[float]]) -> list[float]:
    """Per-example values whose plain mean is the mean of the group means."""
    total = sum(len(g) for g in groups)
    out: list[float] = []
    for g in groups:
        w = total / (len(groups) * len(g)) if g else 0.0
        out += [x * w for x in g]
    return out


def example_values(correct: list[list[list[bool] | None]], metric: str) -> list[float]:
    """Per-example values of one chain whose mean is the chain's metric.

    `correct[i][j]` lists the per-example correctness on task j after stage i (None when not
    evaluated); the examples of task j are in the same order at every stage."""
    T = len(correct)

    def acc(i: int, j: int) -> float:
        c = correct[i][j]
        return sum(c) / len(c)  # type: ignore[arg-type]

    groups: list[list[float]] = []
    if metric == "aa":
        groups = [[float(x) for x in correct[T - 1][j]] for j in range(T)]  # type: ignore[union-attr]
    elif metric in ("forgetting", "bwt"):
        for j in range(T - 1):
            last = correct[T - 1][j]
            if metric == "bwt":
                ref = correct[j][j]
                groups.append([float(a) - float(b) for a, b in zip(last, ref)])  # type: ignore[arg-type]
            else:
                best = max(range(j, T - 1), key=lambda i, j=j: acc(i, j))
                groups.append([float(b) - float(a) for a, b in zip(last, correct[best][j])])  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown metric {metric}")
    return _weighted(groups)


def pooled_values(chains: list[list[list[list[bool] | None]]], metric: str) -> list[float]:
    """Per-example values over several chains (orders x seeds) whose mean is the mean of the
    chains' metrics (every chain weighted equally)."""
    per = [example_values(c, metric) for c in chains]
    return _weighted(per)


def item_values(chains: list[tuple[Sequence[str], list[list[list[bool] | None]]]], metric: str) -> dict[tuple[str, int], float]:
    """Per test example (task, index), its contribution from every chain that uses it, scaled so
    that the plain mean over examples is the mean of the chains' metrics.

    The chains (orders x seeds) share their test examples, so a bootstrap must resample examples
    with all their chains at once (a cluster bootstrap), never the chains' rows as if independent.
    `chains` holds (task order, correct matrix) per chain."""
    per_chain = []
    for order, correct in chains:
        T = len(correct)
        vals = example_values(correct, metric)
        tasks = range(T) if metric == "aa" else range(T - 1)
        keys = [(order[j], e) for j in tasks for e in range(len(correct[T - 1][j] or []))]
        per_chain.append(dict(zip(keys, vals)))
    acc: dict[tuple[str, int], float] = {}
    for d in per_chain:
        for k, v in d.items():
            acc[k] = acc.get(k, 0.0) + v / (len(per_chain) * len(d))
    return {k: len(acc) * u for k, u in acc.items()}
