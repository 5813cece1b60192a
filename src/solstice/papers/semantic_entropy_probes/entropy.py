"""Entropies over sampled answers (natural log), under explicit names (paper §2; Farquhar et al. 2024).

    discrete_semantic_entropy(ids)            -sum_k p_k log p_k with p_k = n_k / M   (SEP target)
    rao_semantic_entropy(ids, loglik)         -sum_k p(C_k) log p(C_k), p(C_k) from summed
                                              likelihoods of the cluster's samples, normalised
    mc_semantic_entropy(ids, loglik)          -(1/K) sum_k log p(C_k)  (the Monte-Carlo form)
    naive_entropy(loglik)                     -(1/M) sum_i l_i  (predictive entropy)

`loglik` holds l_i, the *mean* token log-probability of sample i (length-normalised), as in the
reference implementation. All normalisation goes through logsumexp, so l_i = -1000 is fine.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp


def discrete_semantic_entropy(cluster_ids: Sequence[int]) -> float:
    """Entropy of the empirical cluster distribution; in [0, log M]."""
    if len(cluster_ids) == 0:
        return math.nan
    counts = np.asarray(list(Counter(cluster_ids).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def cluster_log_probs(cluster_ids: Sequence[int], loglik: Sequence[float]) -> dict[int, float]:
    """log p(C_k) = logsumexp_{i in C_k} l_i - logsumexp_{all i} l_i."""
    if len(cluster_ids) != len(loglik):
        raise ValueError(f"{len(cluster_ids)} cluster ids but {len(loglik)} log-likelihoods")
    ll = np.asarray(loglik, dtype=float)
    ids = np.asarray(cluster_ids)
    total = logsumexp(ll)
    return {int(k): float(logsumexp(ll[ids == k]) - total) for k in dict.fromkeys(ids.tolist())}


def rao_semantic_entropy(cluster_ids: Sequence[int], loglik: Sequence[float]) -> float:
    """-sum_k p(C_k) log p(C_k) with likelihood-weighted cluster probabilities (the reference's
    "semantic_entropy")."""
    if len(cluster_ids) == 0:
        return math.nan
    lp = np.asarray(list(cluster_log_probs(cluster_ids, loglik).values()))
    return float(-(np.exp(lp) * lp).sum())


def mc_semantic_entropy(cluster_ids: Sequence[int], loglik: Sequence[float]) -> float:
    """-(1/K) sum_k log p(C_k), the Monte-Carlo estimate over the K clusters."""
    if len(cluster_ids) == 0:
        return math.nan
    lp = np.asarray(list(cluster_log_probs(cluster_ids, loglik).values()))
    return float(-lp.mean())


def naive_entropy(loglik: Sequence[float]) -> float:
    """Predictive entropy estimate -(1/M) sum_i l_i over the samples' mean token log-probs."""
    ll = np.asarray(loglik, dtype=float)
    return float(-ll.mean()) if ll.size else math.nan


def mean_loglik(token_logprobs: Sequence[float] | None) -> float:
    """Mean token log-probability of one answer (NaN for an empty answer)."""
    if not token_logprobs:
        return math.nan
    return float(np.mean(token_logprobs))
