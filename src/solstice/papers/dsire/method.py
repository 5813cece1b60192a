"""DSiRe (paper §4): one nearest-neighbour classifier per voter (a layer's A, B or dW spectrum),
a majority vote across voters, and deterministic tie-breaking; plus the regression extension and
the baselines. Features come from `solstice.training.lora_spectra`.

    clf = DSiRe(normalise="global").fit(train_feats, train_sizes)
    pred = clf.predict(test_feats)            # Prediction(size, votes, ...) per model

`train_feats` is a list (one per model) of {voter name: 1-D array}; every model must have the same
voters. Normalisation is fitted on the training models only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solstice.errors import ConfigError, DataError

NORMALISE = ("global", "per_voter", "none")
TIES = ("distance", "first")


@dataclass
class Prediction:
    size: float
    votes: dict[float, int] = field(default_factory=dict)  # label -> number of voters

    def confidence(self) -> float:
        total = sum(self.votes.values())
        return self.votes.get(self.size, 0) / total if total else 0.0


def stack(feats: Sequence[dict[str, np.ndarray]], voters: Sequence[str]) -> dict[str, np.ndarray]:
    """voter -> [n_models, dim] matrix; DataError naming a voter a model lacks."""
    out = {}
    for v in voters:
        rows = []
        for i, f in enumerate(feats):
            if v not in f:
                raise DataError(f"model {i} has no feature for voter '{v}'")
            rows.append(np.asarray(f[v], dtype=float).ravel())
        if len({r.shape for r in rows}) != 1:
            raise DataError(f"voter '{v}' has features of different lengths across models")
        out[v] = np.stack(rows)
    return out


class Normaliser:
    """'global': one scalar min/max over every training feature, x' = (x - min) / (max - min)
    (it leaves 1-NN results unchanged, as any global affine map does); 'per_voter': each voter's
    features standardised with its training mean and std; 'none'."""

    def __init__(self, mode: str = "global") -> None:
        if mode not in NORMALISE:
            raise ConfigError(f"normalise must be one of {', '.join(NORMALISE)}, got '{mode}'")
        self.mode = mode
        self.params: dict[str, tuple[float, float]] = {}

    def fit(self, X: dict[str, np.ndarray]) -> Normaliser:
        if self.mode == "global":
            lo = min(float(x.min()) for x in X.values())
            hi = max(float(x.max()) for x in X.values())
            self.params = {"*": (lo, (hi - lo) or 1.0)}
        elif self.mode == "per_voter":
            self.params = {v: (float(x.mean()), float(x.std()) or 1.0) for v, x in X.items()}
        return self

    def transform(self, X: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.mode == "none":
            return X
        out = {}
        for v, x in X.items():
            a, b = self.params["*"] if self.mode == "global" else self.params[v]
            out[v] = (x - a) / b
        return out


class DSiRe:
    """Per-voter 1-NN classifiers (L2, NumPy brute force: the nearest training model's size; the
    first one on equal distances) and a majority vote. `ties='distance'` picks, among labels with
    the most votes, the one whose voters' summed NN distance is smallest (then the smallest label);
    `ties='first'` the tied label of the first voter (in sorted voter order) that voted for one.
    `voters` restricts the voters used (default: all)."""

    def __init__(self, normalise: str = "global", ties: str = "distance", voters: Sequence[str] | None = None) -> None:
        if ties not in TIES:
            raise ConfigError(f"ties must be one of {', '.join(TIES)}, got '{ties}'")
        self.norm = Normaliser(normalise)
        self.ties = ties
        self.voter_filter = list(voters) if voters is not None else None

    def fit(self, feats: Sequence[dict[str, np.ndarray]], sizes: Sequence[float]) -> DSiRe:
        if len(feats) != len(sizes) or not feats:
            raise DataError(f"{len(feats)} feature sets for {len(sizes)} sizes")
        self.voters = sorted(self.voter_filter if self.voter_filter is not None else feats[0])
        if not self.voters:
            raise ConfigError("no voters selected")
        X = stack(feats, self.voters)
        self.norm.fit(X)
        self.X = self.norm.transform(X)
        self.labels = np.asarray(sizes, dtype=float)
        return self

    def voter_predictions(self, feats: Sequence[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """[n_models, n_voters] predicted labels and their NN distances."""
        from scipy.spatial.distance import cdist

        X = self.norm.transform(stack(feats, self.voters))
        labels = np.empty((len(feats), len(self.voters)))
        dists = np.empty_like(labels)
        for j, v in enumerate(self.voters):
            d = cdist(X[v], self.X[v])
            nn = np.argmin(d, axis=1)
            labels[:, j] = self.labels[nn]
            dists[:, j] = d[np.arange(len(nn)), nn]
        return labels, dists

    def predict(self, feats: Sequence[dict[str, np.ndarray]]) -> list[Prediction]:
        labels, dists = self.voter_predictions(feats)
        return [vote(labels[i], dists[i], self.ties) for i in range(len(feats))]


def vote(labels: Sequence[float], dists: Sequence[float], ties: str = "distance") -> Prediction:
    """Majority label over voters with deterministic tie-breaking (see DSiRe)."""
    counts = Counter(float(x) for x in labels)
    top = max(counts.values())
    tied = sorted(lab for lab, c in counts.items() if c == top)
    if len(tied) == 1:
        best = tied[0]
    elif ties == "first":
        best = next(float(x) for x in labels if float(x) in tied)
    else:
        summed = {lab: sum(float(d) for x, d in zip(labels, dists) if float(x) == lab) for lab in tied}
        best = min(tied, key=lambda lab: (summed[lab], lab))
    return Prediction(best, dict(sorted(counts.items())))


class LogSizeRegressor:
    """Extension (not in the paper): per-voter kNN regression on log(size), the median over voters,
    back-transformed, so sizes absent from the training labels can be predicted."""

    def __init__(self, normalise: str = "global", k: int = 3) -> None:
        self.norm = Normaliser(normalise)
        self.k = k

    def fit(self, feats: Sequence[dict[str, np.ndarray]], sizes: Sequence[float]) -> LogSizeRegressor:
        from sklearn.neighbors import KNeighborsRegressor

        self.voters = sorted(feats[0])
        X = self.norm.fit(stack(feats, self.voters)).transform(stack(feats, self.voters))
        y = np.log(np.asarray(sizes, dtype=float))
        self.models = {v: KNeighborsRegressor(n_neighbors=min(self.k, len(feats)), algorithm="brute").fit(X[v], y)
                       for v in self.voters}
        return self

    def predict(self, feats: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
        X = self.norm.transform(stack(feats, self.voters))
        per = np.stack([self.models[v].predict(X[v]) for v in self.voters], axis=1)
        return np.exp(np.median(per, axis=1))


def best_single_voter(feats: Sequence[dict[str, np.ndarray]], sizes: Sequence[float], groups: Sequence[Any],
                      normalise: str = "global") -> str:
    """The voter with the lowest leave-one-group-out MAE inside the training models (the
    validation split never sees the test concepts); with a single training concept, leave-one-model-out.
    Every normalisation offered is one affine map per voter, which leaves 1-NN results unchanged, so
    the folds use the raw features. Ties go to the first voter in sorted order."""
    from scipy.spatial.distance import cdist

    Normaliser(normalise)  # validates the mode
    g = np.asarray([str(x) for x in groups])
    if len(set(g)) < 2:
        g = np.arange(len(g)).astype(str)
    if len(g) < 2:
        raise DataError("choosing the single best voter needs at least two training models")
    y = np.asarray(sizes, dtype=float)
    voters = sorted(feats[0])
    X = stack(feats, voters)
    same = g[:, None] == g[None, :]
    err = {}
    for v in voters:
        d = cdist(X[v], X[v])
        d[same] = np.inf  # a model's own concept is held out with it
        err[v] = float(np.abs(y[np.argmin(d, axis=1)] - y).sum())
    return min(voters, key=lambda v: (err[v], voters.index(v)))


def scores(true: Sequence[float], pred: Sequence[float]) -> dict[str, float]:
    """accuracy (exact size), MAE (samples) and MAPE (sklearn's fraction, times 100: percent)."""
    from sklearn.metrics import accuracy_score, mean_absolute_error, mean_absolute_percentage_error

    t = np.asarray(true, dtype=float)
    p = np.asarray(pred, dtype=float)
    return {"acc": float(accuracy_score(t.astype(str), p.astype(str))),
            "mae": float(mean_absolute_error(t, p)),
            "mape": 100.0 * float(mean_absolute_percentage_error(t, p))}


def concept_splits(concepts: Sequence[Any], n_train: int, n_splits: int, seed: int) -> list[tuple[list, list]]:
    """`n_splits` random (train concepts, test concepts) partitions with `n_train` training concepts."""
    uniq = sorted(set(concepts), key=str)
    if not 0 < n_train < len(uniq):
        raise ConfigError(f"n_train_concepts must be between 1 and {len(uniq) - 1} for {len(uniq)} concepts, "
                          f"got {n_train}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_splits):
        perm = [uniq[i] for i in rng.permutation(len(uniq))]
        out.append((sorted(perm[:n_train], key=str), sorted(perm[n_train:], key=str)))
    return out
