"""Agreement metrics: library parity, hand-computed tables, degenerate raters, noisy and lenient
simulated judges, rankings."""

import math

import numpy as np
import pytest

from solstice.metrics.agreement import (
    _kendall_rows,
    _spearman_rows,
    agreement,
    cohens_kappa,
    confusion_matrix,
    krippendorff_alpha,
    leniency,
    percent_agreement,
    ranking_agreement,
    score_matrix,
    scotts_pi,
    table_stats,
)


def _table_labels(cm):
    """Label lists realising a confusion table [judge, human] over categories 0..k-1."""
    a, b = [], []
    for i in range(len(cm)):
        for j in range(len(cm)):
            a += [i] * cm[i][j]
            b += [j] * cm[i][j]
    return a, b


def test_hand_computed_table_where_pi_differs_from_kappa():
    a, b = _table_labels([[20, 5], [15, 60]])
    assert percent_agreement(a, b) == pytest.approx(0.8)
    assert cohens_kappa(a, b) == pytest.approx((0.8 - 0.575) / 0.425, abs=1e-12)
    assert scotts_pi(a, b) == pytest.approx((0.8 - 0.58) / 0.42, abs=1e-12)
    assert krippendorff_alpha(a, b) == pytest.approx(1 - 199 * 40 / 16800, abs=1e-12)
    assert cohens_kappa(a, b) != pytest.approx(scotts_pi(a, b), abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_forms_equal_the_libraries(seed):
    rng = np.random.default_rng(seed)
    k = 2 + seed  # binary and multi-class
    a = rng.integers(0, k, 300)
    b = np.where(rng.random(300) < 0.6, a, rng.integers(0, k, 300))
    cm = confusion_matrix(list(a), list(b))
    st = table_stats(cm)
    assert float(st["kappa"]) == pytest.approx(cohens_kappa(list(a), list(b)), abs=1e-12)
    assert float(st["pi"]) == pytest.approx(scotts_pi(list(a), list(b)), abs=1e-12)
    assert float(st["alpha"]) == pytest.approx(krippendorff_alpha(list(a), list(b)), abs=1e-12)
    assert float(st["pa"]) == pytest.approx(percent_agreement(list(a), list(b)), abs=1e-12)


def test_identical_judge_is_perfect():
    rng = np.random.default_rng(3)
    h = [bool(x) for x in rng.integers(0, 2, 500)]
    rep = agreement(h, h, n_resamples=200)
    for k in ("pa", "kappa", "pi", "alpha"):
        assert rep.values[k] == pytest.approx(1.0)
    assert rep.values["fpr"] == 0 and rep.values["fnr"] == 0 and rep.disagreements == []
    assert rep.cis["kappa"] == (1.0, 1.0)


@pytest.mark.parametrize("e", [0.1, 0.25])
def test_label_flips_with_probability_e_give_kappa_one_minus_two_e(e):
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2, 20000).astype(bool)  # balanced
    j = np.where(rng.random(h.size) < e, ~h, h)
    rep = agreement(list(j), list(h), n_resamples=300)
    lo, hi = rep.cis["kappa"]
    assert lo <= 1 - 2 * e <= hi
    assert abs(rep.values["kappa"] - (1 - 2 * e)) < 0.02


def test_degenerate_raters_have_documented_values():
    h = [True, False, True, True, False]
    const = [True] * 5
    rep = agreement(const, h, n_resamples=50)
    assert rep.values["kappa"] == 0.0 and rep.values["pa"] == pytest.approx(0.6)
    both = agreement([True] * 4, [True] * 4, n_resamples=50)
    assert both.values["pa"] == 1.0
    assert all(math.isnan(both.values[k]) for k in ("kappa", "pi", "alpha"))
    opposite = agreement([True] * 4, [False] * 4, n_resamples=0)
    assert opposite.values["kappa"] == 0 and opposite.values["pi"] == pytest.approx(-1)
    assert opposite.values["alpha"] == pytest.approx(-(4 - 1) / 4)
    empty = agreement([None, None], [True, False], n_resamples=0)
    assert empty.n == 0 and empty.n_missing == 2 and math.isnan(empty.values["kappa"]) and math.isnan(empty.values["pa"])


def test_unparsed_verdicts_are_counted_not_mapped():
    h = [True, False, True, False, True, False]
    j = [True, None, True, float("nan"), False, False]
    rep = agreement(j, h, n_resamples=0)
    assert rep.n == 4 and rep.n_missing == 2
    assert rep.confusion.tolist() == [[1, 1], [0, 2]]
    assert rep.disagreements == [4]  # positions refer to the input
    # as a category of its own instead: three categories, the missing rows count as disagreements
    j3 = ["unparsed" if v is None or v != v else v for v in j]
    rep3 = agreement(j3, h, positive=None, n_resamples=0)
    assert rep3.n == 6 and len(rep3.categories) == 3 and rep3.values["pa"] == pytest.approx(3 / 6)


def test_leniency_model_is_recovered():
    rng = np.random.default_rng(11)
    n, pc, pplus = 10000, 0.6, 0.7
    h = rng.random(n) < 0.5
    know = rng.random(n) < pc
    j = np.where(know, h, rng.random(n) < pplus)
    rep = agreement(list(j), list(h), n_resamples=0)
    assert abs(rep.values["p_correct"] - pc) < 0.02 and abs(rep.values["p_plus"] - pplus) < 0.02
    # an exact-match-like judge is never lenient: misses some correct answers, accepts no wrong one
    em = np.where(h, rng.random(n) < 0.7, False)
    rep_em = agreement(list(em), list(h), n_resamples=0)
    assert rep_em.values["p_plus"] == 0 and rep_em.values["fpr"] == 0 and rep_em.values["fnr"] > 0.25
    assert leniency(1.0, 0.0) == (1.0, pytest.approx(float("nan"), nan_ok=True))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(5)
    h = list(rng.integers(0, 2, 400).astype(bool))
    j = [x if rng.random() < 0.8 else not x for x in h]
    r1 = agreement(j, h, n_resamples=300, seed=9)
    r2 = agreement(j, h, n_resamples=300, seed=9)
    assert r1.cis == r2.cis
    for k in ("pa", "kappa", "pi", "alpha"):
        lo, hi = r1.cis[k]
        assert lo <= r1.values[k] <= hi


def test_ranking_constant_shift_keeps_order():
    rng = np.random.default_rng(2)
    n, s = 200, 6
    human = (rng.random((n, s)) < np.linspace(0.3, 0.8, s)).astype(float)
    judge = human.copy()
    for c in range(s):  # flip exactly 10 wrong answers to right in every system: +5 points each
        zeros = np.flatnonzero(judge[:, c] == 0)[:10]
        judge[zeros, c] = 1
    rep = ranking_agreement(judge, human, [f"s{i}" for i in range(s)], n_resamples=200)
    assert rep.values["spearman"] == pytest.approx(1.0) and rep.values["kendall"] == pytest.approx(1.0)
    assert all(d == pytest.approx(5.0) for d in rep.deviations.values())
    assert rep.values["max_abs_dev"] == pytest.approx(5.0)


def test_ranking_ignores_items_the_judge_did_not_label():
    human = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=float)
    judge = np.array([[1, 0], [np.nan, 1], [0, 0], [1, np.nan]])
    rep = ranking_agreement(judge, human, n_resamples=0)
    assert rep.judge_scores.tolist() == pytest.approx([200 / 3, 100 / 3])
    assert rep.human_scores.tolist() == pytest.approx([200 / 3, 100 / 3])


def test_vectorised_rank_correlations_equal_scipy():
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(4)
    a = rng.integers(0, 5, (50, 7)).astype(float)  # with ties
    b = a + rng.normal(0, 1.5, a.shape)
    b[:, 0] = b[:, 1]
    sp, kt = _spearman_rows(a, b), _kendall_rows(a, b)
    for i in range(50):
        assert sp[i] == pytest.approx(spearmanr(a[i], b[i])[0], abs=1e-12)
        assert kt[i] == pytest.approx(kendalltau(a[i], b[i])[0], abs=1e-12)


def test_score_matrix_pivots_and_refuses_duplicates():
    m, items, systems = score_matrix([True, False, None], ["q1", "q2", "q1"], ["A", "A", "B"])
    assert items == ["q1", "q2"] and systems == ["A", "B"]
    assert m[0, 0] == 1 and m[1, 0] == 0 and np.isnan(m[0, 1]) and np.isnan(m[1, 1])
    with pytest.raises(ValueError, match="twice"):
        score_matrix([True, True], ["q1", "q1"], ["A", "A"])
