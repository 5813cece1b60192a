"""Concept-split evaluation of DSiRe and its baselines on one labelled set of adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.papers.dsire.method import (
    DSiRe,
    LogSizeRegressor,
    best_single_voter,
    concept_splits,
    scores,
)
from solstice.training.lora_spectra import VOTER_TYPES

METHODS = ("dsire", "dsire_A", "dsire_B", "dsire_BA", "norm_only", "best_voter", "random", "regression")


def evaluate_splits(feats: Sequence[dict[str, np.ndarray]], norms: Sequence[dict[str, np.ndarray]],
                    sizes: Sequence[float], concepts: Sequence[str], *, n_train: int, n_splits: int, seed: int,
                    normalise: str = "global", ties: str = "distance") -> list[dict[str, Any]]:
    """Per split: the train/test concepts and {method: {acc, mae, mape}} on the test models."""
    sizes_arr = np.asarray(sizes, dtype=float)
    out = []
    for k, (tr_c, te_c) in enumerate(concept_splits(concepts, n_train, n_splits, seed)):
        trs, tes = set(tr_c), set(te_c)
        tr = [i for i, c in enumerate(concepts) if c in trs]
        te = [i for i, c in enumerate(concepts) if c in tes]
        ftr, fte = [feats[i] for i in tr], [feats[i] for i in te]
        ytr, yte = sizes_arr[tr], sizes_arr[te]
        preds: dict[str, np.ndarray] = {}
        main = DSiRe(normalise, ties).fit(ftr, ytr)
        p = main.predict(fte)
        preds["dsire"] = np.array([x.size for x in p])
        for t in VOTER_TYPES:
            voters = [v for v in main.voters if v.endswith("|" + t)]
            if voters:
                preds[f"dsire_{t}"] = np.array([x.size for x in DSiRe(normalise, ties, voters).fit(ftr, ytr).predict(fte)])
        ntr, nte = [norms[i] for i in tr], [norms[i] for i in te]
        preds["norm_only"] = np.array([x.size for x in DSiRe(normalise, ties).fit(ntr, ytr).predict(nte)])
        best = best_single_voter(ftr, ytr, [concepts[i] for i in tr], normalise)
        preds["best_voter"] = np.array([x.size for x in DSiRe(normalise, ties, [best]).fit(ftr, ytr).predict(fte)])
        rng = np.random.default_rng(seed * 1000 + k)
        preds["random"] = rng.choice(np.unique(ytr), size=len(te))
        preds["regression"] = LogSizeRegressor(normalise).fit(ftr, ytr).predict(fte)
        res = {m: scores(yte, v) for m, v in preds.items()}
        res["regression"]["acc"] = float(np.mean(np.round(preds["regression"]) == yte))
        out.append({"split": k, "train": tr_c, "test": te_c, "best_voter": best, "scores": res,
                    "dsire_votes": [x.votes for x in p], "true": yte.tolist(),
                    "pred": {m: np.asarray(v, dtype=float).tolist() for m, v in preds.items()}})
    return out


def leave_in_accuracy(feats: Sequence[dict[str, np.ndarray]], sizes: Sequence[float], normalise: str = "global",
                      ties: str = "distance") -> float:
    """Accuracy when the test set is the training set (every voter finds the model itself)."""
    clf = DSiRe(normalise, ties).fit(feats, sizes)
    return float(np.mean([p.size == s for p, s in zip(clf.predict(feats), sizes)]))


def split_metrics(splits: list[dict[str, Any]], suffix: str) -> dict[str, MetricValue]:
    """Mean over splits with a bootstrap CI over the splits, per method and score; the paired
    per-split differences random - DSiRe and norm-only - DSiRe (MAE)."""
    from solstice.metrics.stats import mean_metric, paired_difference_metric

    out: dict[str, MetricValue] = {}
    n = len(splits)
    for m in splits[0]["scores"]:
        for s in ("acc", "mae", "mape"):
            vals = [sp["scores"][m][s] for sp in splits]
            unit = "%" if s == "mape" else ("samples" if s == "mae" else "fraction")
            mv = mean_metric(vals, higher_is_better=(s == "acc"),
                             note=f"{m}, mean over {n} concept splits ({unit}); CI resamples splits")
            out[f"{m}_{s}_{suffix}"] = replace(mv, unit="splits") if mv.ci95 else mv
    for base in ("random", "norm_only"):
        a = [sp["scores"][base]["mae"] for sp in splits]
        b = [sp["scores"]["dsire"]["mae"] for sp in splits]
        out[f"{base}_minus_dsire_mae_{suffix}"] = paired_difference_metric(
            a, b, unit="splits", note=f"per-split MAE({base}) - MAE(DSiRe) on the same test models")
    return out
