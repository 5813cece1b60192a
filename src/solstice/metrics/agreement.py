"""Agreement between two raters (a judge and humans, two judges, two annotators) and between the
system rankings they induce.

    rep = agreement(judge_labels, human_labels)       # PA, Cohen's kappa, Scott's pi, Krippendorff's
    rep.metrics()                                     # alpha with bootstrap CIs, confusion, leniency
    rank = ranking_agreement(judge_matrix, human_matrix, systems)   # Spearman / Kendall + deviations

Labels are any hashable values; `None` and NaN mean "no label" (a judge verdict that could not be
parsed, a blank cell). Those pairs are left out of the statistics and counted in `n_missing`, never
mapped to a label. To treat unparsed verdicts as an outcome of their own instead, give them a value
(e.g. the string "unparsed"): it becomes one more category.

Point estimates come from the field's libraries: `sklearn.metrics.cohen_kappa_score` (Cohen's
kappa), `statsmodels.stats.inter_rater.fleiss_kappa` on `aggregate_raters` (Scott's pi: two-rater
Fleiss kappa, chance agreement from the pooled marginals) and `krippendorff.alpha` (nominal). The
bootstrap CIs use the same statistics written as closed forms of the confusion table, vectorised
over resamples (tests check them against the libraries to 1e-12).

Degenerate cases (documented and tested):
    * no labelled pair                      -> every statistic NaN
    * both raters constant on the same label -> PA = 1; kappa, pi, alpha undefined (NaN: 0/0)
    * one rater constant                    -> kappa = 0 (p_o = p_e); pi and alpha may be < 0
    * both constant on different labels     -> PA = 0, kappa = 0, pi = -1, alpha = -(N-1)/N (binary)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solstice.core.types import MetricValue
from solstice.metrics.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

_NAN = float("nan")


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def paired_labels(a: Sequence[Any], b: Sequence[Any]) -> tuple[list[Any], list[Any], np.ndarray]:
    """The pairs where both raters gave a label, and the boolean mask of those positions."""
    if len(a) != len(b):
        raise ValueError(f"raters labelled different numbers of items ({len(a)} vs {len(b)})")
    keep = np.array([not (_missing(x) or _missing(y)) for x, y in zip(a, b)], dtype=bool)
    return [x for x, k in zip(a, keep) if k], [y for y, k in zip(b, keep) if k], keep


def _categories(a: Sequence[Hashable], b: Sequence[Hashable], categories: Sequence[Hashable] | None) -> list:
    if categories is not None:
        cats = list(categories)
        unknown = {*a, *b} - set(cats)
        if unknown:
            raise ValueError(f"labels {sorted(map(str, unknown))} are not among the categories {cats}")
        return cats
    seen = list(dict.fromkeys([*a, *b]))
    try:
        return sorted(seen)
    except TypeError:
        return seen


def _codes(a, b, categories=None) -> tuple[np.ndarray, np.ndarray, list]:
    cats = _categories(a, b, categories)
    index = {c: i for i, c in enumerate(cats)}
    return (np.array([index[x] for x in a], dtype=np.int64), np.array([index[y] for y in b], dtype=np.int64), cats)


def confusion_matrix(a: Sequence[Any], b: Sequence[Any], categories: Sequence[Hashable] | None = None) -> np.ndarray:
    """Counts `cm[i, j]` of items rater a put in category i and rater b in category j (labelled
    pairs only)."""
    x, y, _ = paired_labels(a, b)
    ca, cb, cats = _codes(x, y, categories)
    k = len(cats)
    return np.bincount(ca * k + cb, minlength=k * k).reshape(k, k)


# -- the statistics as closed forms of confusion tables [..., k, k] (vectorised) --------------------
def table_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Percent agreement, Cohen's kappa, Scott's pi and nominal Krippendorff's alpha (two raters, no
    missing values) of confusion tables with shape [..., k, k]. Undefined values are NaN."""
    cm = np.asarray(cm, dtype=float)
    n = cm.sum(axis=(-1, -2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = cm / n[..., None, None]
        po = np.trace(p, axis1=-2, axis2=-1)
        ra, rb = p.sum(axis=-1), p.sum(axis=-2)
        pe_k = (ra * rb).sum(axis=-1)
        pooled = (ra + rb) / 2
        pe_pi = (pooled**2).sum(axis=-1)
        kappa = np.where(pe_k < 1 - 1e-15, (po - pe_k) / (1 - pe_k), np.nan)
        pi = np.where(pe_pi < 1 - 1e-15, (po - pe_pi) / (1 - pe_pi), np.nan)
        # Krippendorff: coincidences over 2N pairable values; alpha = 1 - (2N-1) D / sum_{c!=k} n_c n_k
        counts = cm.sum(axis=-1) + cm.sum(axis=-2)
        total = 2 * n
        expected = total**2 - (counts**2).sum(axis=-1)
        disagree = n - np.trace(cm, axis1=-2, axis2=-1)
        alpha = np.where(expected > 0, 1 - (total - 1) * 2 * disagree / expected, np.nan)
    po = np.where(n > 0, po, np.nan)
    return {"pa": po, "kappa": kappa, "pi": pi, "alpha": alpha}


def binary_rates(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Rates of a 2x2 table [..., judge, human] with category 1 = positive (e.g. "correct"):
    TPR, FNR (strictness), FPR (leniency), TNR, and the leniency model's P_c and P_+."""
    cm = np.asarray(cm, dtype=float)
    tp, fp = cm[..., 1, 1], cm[..., 1, 0]
    fn, tn = cm[..., 0, 1], cm[..., 0, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = tp / (tp + fn)
        fpr = fp / (fp + tn)
        pc, pplus = leniency(tpr, fpr)
    return {"tpr": tpr, "fnr": 1 - tpr, "fpr": fpr, "tnr": 1 - fpr, "p_correct": pc, "p_plus": pplus}


def leniency(tpr, fpr):
    """Inverts the leniency model: with probability P_c the judge gives the true label, otherwise it
    says "correct" with probability P_+. Then TPR = P_c + (1 - P_c) P_+ and FPR = (1 - P_c) P_+, so
    P_c = TPR - FPR and P_+ = FPR / (1 - P_c) (NaN when P_c = 1)."""
    tpr = np.asarray(tpr, dtype=float)
    fpr = np.asarray(fpr, dtype=float)
    pc = tpr - fpr
    with np.errstate(divide="ignore", invalid="ignore"):
        pplus = np.where(np.abs(1 - pc) > 1e-12, fpr / (1 - pc), np.nan)
    if pc.ndim == 0:
        return float(pc), float(pplus)
    return pc, pplus


# -- library point estimates ----------------------------------------------------------------------
def _coded_pair(a: Sequence[Any], b: Sequence[Any]):
    """Both raters' labels as integer codes over their shared categories; None when a chance-corrected
    coefficient is undefined (no paired labels, or a single category between them)."""
    x, y, _ = paired_labels(a, b)
    if not x:
        return None
    ca, cb, cats = _codes(x, y)
    return None if len(cats) == 1 else (ca, cb, cats)


def percent_agreement(a: Sequence[Any], b: Sequence[Any]) -> float:
    x, y, _ = paired_labels(a, b)
    return float(np.mean([u == v for u, v in zip(x, y)])) if x else _NAN


def cohens_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa (each rater's own marginals), from scikit-learn. NaN when undefined."""
    from sklearn.metrics import cohen_kappa_score

    coded = _coded_pair(a, b)
    if coded is None:
        return _NAN  # no pairs, or both raters constant on the same label: 0/0
    ca, cb, cats = coded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(ca, cb, labels=list(range(len(cats)))))


def scotts_pi(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Scott's pi (pooled marginals) = Fleiss' kappa for two raters, from statsmodels."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    coded = _coded_pair(a, b)
    if coded is None:
        return _NAN
    ca, cb, cats = coded
    table, _ = aggregate_raters(np.stack([ca, cb], axis=1), n_cat=len(cats))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Nominal Krippendorff's alpha of two raters, from the `krippendorff` package."""
    import krippendorff

    coded = _coded_pair(a, b)
    if coded is None:
        return _NAN
    ca, cb, cats = coded
    data = np.stack([ca, cb]).astype(float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


# -- bootstrap ------------------------------------------------------------------------------------
def bootstrap_tables(ca: np.ndarray, cb: np.ndarray, k: int, *, n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, chunk: int = 250) -> np.ndarray:
    """Confusion tables [n_resamples, k, k] of item resamples (with replacement), seeded."""
    rng = np.random.default_rng(seed)
    n = len(ca)
    flat = ca * k + cb
    out = np.empty((n_resamples, k, k), dtype=np.int64)
    for s in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - s)
        idx = rng.integers(0, n, size=(r, n))
        offs = (np.arange(r) * k * k)[:, None]
        out[s : s + r] = np.bincount((flat[idx] + offs).ravel(), minlength=r * k * k).reshape(r, k, k)
    return out


def _ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return None
    lo, hi = np.percentile(v, [50 * (1 - confidence), 100 - 50 * (1 - confidence)])
    return (float(lo), float(hi))


# -- the report -----------------------------------------------------------------------------------
@dataclass
class AgreementReport:
    """Agreement of rater `a` (a judge) with rater `b` (the reference, e.g. humans)."""

    categories: list
    confusion: np.ndarray  # [a's category, b's category]
    n: int
    n_missing: int
    values: dict[str, float]
    cis: dict[str, tuple[float, float] | None]
    disagreements: list[int] = field(default_factory=list)  # positions (in the input) where a != b

    def metric(self, name: str, *, note: str = "") -> MetricValue:
        hib = None if name in ("fpr", "fnr", "p_plus", "tpr", "tnr") else True
        return MetricValue(self.values[name], self.n, self.cis.get(name), hib, note)

    def metrics(self, prefix: str = "") -> dict[str, MetricValue]:
        return {f"{prefix}{k}": self.metric(k) for k in self.values}

    def to_json(self) -> dict[str, Any]:
        def clean(v):
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        return {
            "categories": [str(c) for c in self.categories],
            "confusion": self.confusion.tolist(),
            "n": self.n,
            "n_missing": self.n_missing,
            "values": {k: clean(v) for k, v in self.values.items()},
            "ci95": {k: None if c is None else [clean(c[0]), clean(c[1])] for k, c in self.cis.items()},
            "n_disagreements": len(self.disagreements),
        }


def agreement(
    a: Sequence[Any],
    b: Sequence[Any],
    *,
    categories: Sequence[Hashable] | None = None,
    positive: Hashable | None = True,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> AgreementReport:
    """PA, Cohen's kappa, Scott's pi, Krippendorff's alpha with bootstrap CIs, the confusion table
    and the disagreement list of rater `a` against rater `b`. For binary labels that include
    `positive` (default True = "correct"), also the leniency/strictness rates: FPR (a says positive
    where b says negative), FNR, TPR, TNR and the leniency model's P_c and P_+ (see `leniency`)."""
    x, y, keep = paired_labels(a, b)
    positions = np.flatnonzero(keep)
    cats = _categories(x, y, categories)
    if categories is None and all(isinstance(v, (bool, np.bool_)) for v in (*x, *y)):
        cats = [False, True]
    if positive is not None and positive in cats and len(cats) == 2:
        cats = [c for c in cats if c != positive] + [positive]
    ca, cb, cats = _codes(x, y, cats)
    k = len(cats)
    cm = np.bincount(ca * k + cb, minlength=k * k).reshape(k, k)
    values = {
        "pa": percent_agreement(x, y),
        "kappa": cohens_kappa(x, y),
        "pi": scotts_pi(x, y),
        "alpha": krippendorff_alpha(x, y),
    }
    binary = k == 2 and cats[-1] == positive
    if binary:
        values.update({name: float(v) for name, v in binary_rates(cm).items()})
    cis: dict[str, tuple[float, float] | None] = {name: None for name in values}
    if len(x) >= 2 and n_resamples > 0:
        tables = bootstrap_tables(ca, cb, k, n_resamples=n_resamples, seed=seed)
        boot = table_stats(tables)
        if binary:
            boot.update(binary_rates(tables))
        cis = {name: _ci(np.asarray(boot[name], dtype=float), confidence) for name in values}
    dis = [int(p) for p, u, v in zip(positions, ca, cb) if u != v]
    return AgreementReport(cats, cm, len(x), int((~keep).sum()), values, cis, dis)


# -- rankings of systems ----------------------------------------------------------------------------
def system_scores(labels: np.ndarray) -> np.ndarray:
    """Per-system score in points (100 x the share of its labelled items judged correct) from an
    [n_items, n_systems] matrix of 1/0/NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return 100.0 * np.nanmean(np.asarray(labels, dtype=float), axis=-2)


def _rank_rows(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra, rb = _rank_rows(a), _rank_rows(b)
    ra = ra - ra.mean(axis=-1, keepdims=True)
    rb = rb - rb.mean(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


def _kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b per row (as scipy.stats.kendalltau), vectorised over pairs of systems."""
    i, j = np.triu_indices(a.shape[-1], k=1)
    sa = np.sign(a[..., i] - a[..., j])
    sb = np.sign(b[..., i] - b[..., j])
    num = (sa * sb).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / np.sqrt((sa != 0).sum(-1) * (sb != 0).sum(-1))


@dataclass
class RankingReport:
    systems: list[str]
    judge_scores: np.ndarray
    human_scores: np.ndarray
    values: dict[str, float]
    cis: dict[str, tuple[float, float] | None]

    @property
    def deviations(self) -> dict[str, float]:
        """Judge score minus human score per system, in points."""
        return {s: float(j - h) for s, j, h in zip(self.systems, self.judge_scores, self.human_scores)}

    def metrics(self, prefix: str = "") -> dict[str, MetricValue]:
        hib = {"spearman": True, "kendall": True, "max_abs_dev": False, "mean_abs_dev": False}
        n = len(self.systems)
        return {f"{prefix}{k}": MetricValue(v, n, self.cis.get(k), hib.get(k)) for k, v in self.values.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "systems": self.systems,
            "judge_scores": [float(x) for x in self.judge_scores],
            "human_scores": [float(x) for x in self.human_scores],
            "deviations": self.deviations,
            "values": {k: (None if math.isnan(v) else v) for k, v in self.values.items()},
            "ci95": {k: (None if c is None else list(c)) for k, c in self.cis.items()},
        }


def ranking_agreement(
    judge: np.ndarray,
    human: np.ndarray,
    systems: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> RankingReport:
    """How well a judge ranks systems (exam-takers) compared with humans.

    `judge` and `human` are [n_items, n_systems] matrices of 1 (correct) / 0 / NaN (no verdict),
    the same items answered by every system. Scores are percentages of labelled items; the report
    gives Spearman's rho and Kendall's tau-b between the two score vectors (scipy semantics), the
    largest and the mean |judge - human| score deviation, and CIs from resampling items (rows)."""
    from scipy.stats import kendalltau, spearmanr

    j = np.asarray(judge, dtype=float)
    h = np.asarray(human, dtype=float)
    if j.shape != h.shape or j.ndim != 2:
        raise ValueError(f"judge and human matrices must have the same [items, systems] shape, got {j.shape} and {h.shape}")
    names = list(systems) if systems is not None else [str(i) for i in range(j.shape[1])]
    h = np.where(np.isnan(j), np.nan, h)  # score both on the items the judge labelled
    js, hs = system_scores(j), system_scores(h)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = {
            "spearman": float(spearmanr(js, hs)[0]),
            "kendall": float(kendalltau(js, hs)[0]),
            "max_abs_dev": float(np.nanmax(np.abs(js - hs))),
            "mean_abs_dev": float(np.nanmean(np.abs(js - hs))),
        }
    cis: dict[str, tuple[float, float] | None] = {k: None for k in values}
    if n_resamples > 0 and j.shape[0] >= 2:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, j.shape[0], size=(n_resamples, j.shape[0]))
        bj, bh = system_scores(j[idx]), system_scores(h[idx])
        dev = np.abs(bj - bh)
        boot = {
            "spearman": _spearman_rows(bj, bh),
            "kendall": _kendall_rows(bj, bh),
            "max_abs_dev": np.nanmax(dev, axis=-1),
            "mean_abs_dev": np.nanmean(dev, axis=-1),
        }
        cis = {k: _ci(v, confidence) for k, v in boot.items()}
    return RankingReport(names, js, hs, values, cis)


def score_matrix(labels: Sequence[Any], items: Sequence[Hashable], systems: Sequence[Hashable],
                 positive: Hashable = True) -> tuple[np.ndarray, list, list]:
    """Pivot long-format labels (one per (item, system) row) into an [items, systems] matrix of
    1 / 0 / NaN (missing label or a cell absent from the rows)."""
    item_ids = list(dict.fromkeys(items))
    sys_ids = list(dict.fromkeys(systems))
    ii = {x: i for i, x in enumerate(item_ids)}
    si = {x: i for i, x in enumerate(sys_ids)}
    m = np.full((len(item_ids), len(sys_ids)), np.nan)
    seen: set[tuple[int, int]] = set()
    for lab, it, sy in zip(labels, items, systems):
        cell = (ii[it], si[sy])
        if cell in seen:
            raise ValueError(f"item {it!r} appears twice for system {sy!r}")
        seen.add(cell)
        if not _missing(lab):
            m[cell] = 1.0 if lab == positive else 0.0
    return m, item_ids, sys_ids


def summarize(reports: Mapping[str, AgreementReport]) -> list[dict[str, Any]]:
    """One row per rater: n, missing, PA, kappa, pi, alpha (point values) for tables."""
    return [{"rater": name, "n": r.n, "missing": r.n_missing, **{k: r.values[k] for k in ("pa", "kappa", "pi", "alpha")}}
            for name, r in reports.items()]
