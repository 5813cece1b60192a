"""Claim verdicts: the paired rule, CI-less metrics, seeds, harness checks, failures and the tally."""

import math

import numpy as np

from solstice.core.paper import (
    FAIL,
    FAILED,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    PASS,
    POINT_HOLDS,
    REPRODUCED,
    Claim,
    evaluate,
    evaluate_run,
    tally,
)
from solstice.core.types import MetricValue
from solstice.metrics.stats import mean_metric, paired_difference_metric


def mv(v, lo=None, hi=None, n=100, unit="items"):
    return MetricValue(v, n, None if lo is None else (lo, hi), unit=unit if lo is not None else "")


def planted(effect: float, seed: int, n: int = 200):
    """Two arms on the same items: a wide spread of item difficulty shared by both arms, plus
    `effect` for arm A and a little per-item noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, n)
    a = base + effect + rng.normal(0, 0.05, n)
    b = base + rng.normal(0, 0.05, n)
    return a, b


def test_planted_paired_effect_with_overlapping_marginals_is_reproduced_only_by_the_paired_rule():
    a, b = planted(0.05, seed=1)
    ma, mb = mean_metric(a), mean_metric(b)
    assert ma.ci95[0] < mb.ci95[1] and mb.ci95[0] < ma.ci95[1]  # the marginal CIs overlap widely
    metrics = {"a": ma, "b": mb, "a_minus_b": paired_difference_metric(a, b)}
    paired = evaluate(Claim("k", "A beats B", "T1", check="a_minus_b > 0"), metrics)
    marginal = evaluate(Claim("k", "A beats B", "T1", check="a > b"), metrics)
    assert paired.status == REPRODUCED and paired.rule == "interval"
    assert marginal.status == POINT_HOLDS and marginal.rule == "marginal"


def test_a_null_effect_is_never_reproduced():
    claim = Claim("k", "A beats B", "T1", check="a_minus_b > 0")
    marginal = Claim("k", "A beats B", "T1", check="a > b")
    statuses = []
    for seed in range(40):
        a, b = planted(0.0, seed=seed)
        m = {"a": mean_metric(a), "b": mean_metric(b), "a_minus_b": paired_difference_metric(a, b)}
        statuses.append(evaluate(claim, m).status)
        assert evaluate(marginal, m).status != REPRODUCED
    # at the 95% level a true null leaves the CI wholly above 0 in about 2.5% of draws
    assert statuses.count(REPRODUCED) <= 2 and statuses.count(INCONCLUSIVE) >= 30
    # the exact null (the same outputs in both arms): a degenerate [0, 0] interval proves nothing
    a, _ = planted(0.0, seed=0)
    same = {"d": paired_difference_metric(a, a)}
    for check in ("d > 0", "d >= 0", "d <= 0"):
        assert evaluate(Claim("k", "x", "y", check=check), same).status != REPRODUCED


def test_a_metric_without_a_ci_is_never_beyond_the_cis():
    no_ci = {"x": MetricValue(0.9, 10, None), "y": MetricValue(0.1, 10, None)}
    for c in (Claim("k", "x", "y", check="x > 0.5"), Claim("k", "x", "y", check="x > y"),
              Claim("k", "x", "y", check="0.5 < x"),
              Claim("k", "x", "y", metric="x", paper_value=0.9, tolerance=0.05)):
        a = evaluate(c, no_ci)
        assert a.status == POINT_HOLDS, (c, a)
        assert "beyond" not in a.detail
    assert evaluate(Claim("k", "x", "y", check="x < 0.5"), no_ci).status == NOT_REPRODUCED


def test_fewer_than_five_seeds_give_no_interval_verdict():
    three = MetricValue(0.3, 3, (0.1, 0.5), unit="seeds")
    five = MetricValue(0.3, 5, (0.1, 0.5), unit="seeds")
    c = Claim("k", "x", "y", check="d > 0")
    assert evaluate(c, {"d": three}).status == POINT_HOLDS
    assert "fewer than 5 seeds" in evaluate(c, {"d": three}).detail
    assert evaluate(c, {"d": five}).status == REPRODUCED


def test_bound_claims_reproduced_inconclusive_not_reproduced():
    c = Claim("k", "auroc above 0.7", "F4", check="auroc >= 0.7")
    assert evaluate(c, {"auroc": mv(0.8, 0.72, 0.88)}).status == REPRODUCED
    assert evaluate(c, {"auroc": mv(0.75, 0.65, 0.85)}).status == INCONCLUSIVE
    assert evaluate(c, {"auroc": mv(0.6, 0.55, 0.65)}).status == NOT_REPRODUCED
    assert evaluate(c, {"auroc": mv(0.8, 0.70, 0.88)}).status == INCONCLUSIVE  # touching the bound


def test_value_claims_need_the_ci_inside_the_band():
    c = Claim("k", "acc", "T1", metric="acc", paper_value=0.60, tolerance=0.05)
    assert evaluate(c, {"acc": mv(0.61, 0.58, 0.64)}).status == REPRODUCED
    # a wide CI that merely contains the paper's value is not a reproduction
    assert evaluate(c, {"acc": mv(0.61, 0.30, 0.90)}).status == INCONCLUSIVE
    assert evaluate(c, {"acc": mv(0.30, 0.25, 0.35)}).status == NOT_REPRODUCED


def test_not_run_and_failed_claims_carry_no_number():
    metrics = {"acc": mv(0.5, 0.4, 0.6)}
    a = evaluate(Claim("k", "GPT-4o scores 0.7", "T1", metric="acc", paper_value=0.7, not_run="needs GPT-4o"), metrics)
    assert a.status == NOT_RUN and a.ours is None and a.to_json()["ours"] is None
    # a model that produced no parsable output failed; it was run
    unparsed = {"acc": MetricValue(math.nan, 0, None), "unparsed": MetricValue(1.0, 4, None)}
    f = evaluate(Claim("k", "acc", "T1", metric="acc", paper_value=0.7, tolerance=0.1), unparsed)
    assert f.status == FAILED and f.label == "failed: 4 of 4 unparsed" and f.ours is None
    # a metric the run did not compute (its config leaves the experiment out): not run, no number
    gone = evaluate(Claim("k", "x", "y", check="gone > 0"), metrics)
    assert gone.status == NOT_RUN and gone.ours is None and "did not compute" in gone.detail


def test_harness_checks_pass_or_fail_and_never_enter_the_claims_tally():
    h = Claim("golden", "kappa of the released labels", "T2", metric="kappa", paper_value=0.5, tolerance=0.01,
              kind="harness")
    c = Claim("effect", "A beats B", "T1", check="d > 0")
    metrics = {"kappa": MetricValue(0.5, 10, None), "d": mv(0.2, 0.1, 0.3)}
    got = evaluate_run([h, c], metrics)
    assert [a.status for a in got] == [PASS, REPRODUCED]
    assert tally(got, "small") == {REPRODUCED: 1}
    assert evaluate(h, {"kappa": MetricValue(0.6, 10, None)}).status == FAIL
    assert tally(got, "smoke") == {}  # a smoke run is a plumbing check, never counted
    not_run = Claim("big", "70B", "T3", metric="kappa", paper_value=0.9, not_run="needs a 70B model")
    assert NOT_RUN not in tally(evaluate_run([not_run], metrics), "small")


def test_a_run_that_did_not_complete_tests_nothing():
    c = Claim("effect", "A beats B", "T1", check="d > 0")
    metrics = {"d": mv(0.2, 0.1, 0.3)}
    assert evaluate_run([c], metrics, "failed", "BackendError: down")[0].status == FAILED
    assert evaluate_run([c], metrics, "interrupted")[0].status == NOT_RUN
