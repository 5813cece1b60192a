"""Preference labels (retrieval/preferences.py) and the multi-task preference reranker
(training/reranker.py): losses against brute-force references, MGDA weights, training a tiny
cross-encoder to separate a synthetic pair set, save/load, and the label rule on released rows."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from conftest import needs_data
from solstice.errors import ConfigError, DataError
from solstice.retrieval.preferences import (
    Preference,
    answer_preference,
    answer_scores,
    has_answer_preference,
    logprob_preference,
    order_by_preference,
    preference,
    preference_records,
)

torch = pytest.importorskip("torch")
from solstice.training import reranker as rr  # noqa: E402

P = Preference


# ------------------------------------------------------------------------------ preference labels
def test_preference_rule_cases():
    assert preference(0, 0.0, 1, 0.5) is P.ALIGNED
    assert preference(1, 1.0, 0, 0.9) is P.UNALIGNED  # Hits decides before F1
    assert preference(0, 0.2, 0, 0.4) is P.ALIGNED  # Hits tie, F1 rises
    assert preference(1, 0.8, 1, 0.5) is P.UNALIGNED
    assert preference(1, 1.0, 1, 1.0) is P.BOTH_CORRECT
    assert preference(0, 0.0, 0, 0.0) is P.BOTH_INCORRECT
    assert [p.is_signal for p in P] == [True, True, False, False]


def test_answer_scores_use_containment_and_f1():
    assert answer_scores("It was August 2, 1990.", ["August 2 , 1990", "1995"]) == (
        1,
        pytest.approx(0.75),
    )  # P 3/5, R 1
    assert answer_scores("varies by country", ["1995"]) == (0, 0.0)
    assert answer_preference("no idea", "the answer is Paris", ["Paris"]) is P.ALIGNED
    assert answer_preference("Paris", "Lyon", ["Paris"]) is P.UNALIGNED


def test_logprob_and_has_answer_baselines():
    assert logprob_preference(0.6, 0.5) is P.ALIGNED
    assert logprob_preference(-0.6, 0.5) is P.UNALIGNED
    assert logprob_preference(0.1, 0.5) is P.BOTH_INCORRECT
    assert logprob_preference(0.1, 0.5, correct_before=True) is P.BOTH_CORRECT
    with pytest.raises(ConfigError):
        logprob_preference(0.0, -1)
    assert has_answer_preference("Paris is the capital of France.", ["paris"]) is P.ALIGNED
    assert has_answer_preference("Lyon is a city.", ["Paris"]) is P.UNALIGNED


def test_order_and_records_are_seeded_and_consistent():
    prefs = [P.UNALIGNED, P.ALIGNED, P.BOTH_INCORRECT, P.BOTH_CORRECT, P.ALIGNED, P.UNALIGNED]
    assert order_by_preference(prefs) == [1, 4, 3, 2, 0, 5]
    docs = [f"doc{i}" for i in range(6)]
    a = preference_records("q", docs, prefs, seed=3)
    b = preference_records("q", docs, prefs, seed=3)
    assert a == b
    assert len(a) == 4  # one per aligned/unaligned document
    rank = {d: k for k, d in enumerate(docs[i] for i in order_by_preference(prefs))}
    for r in a:
        assert r["classification"]["label"] in (1, 2)
        assert len(r["rank_list"]) == 4
        assert [rank[d] for d in r["rank_list"]] == sorted(rank[d] for d in r["rank_list"])
        assert all(prefs[docs.index(d)] is P.ALIGNED for d in r["positive"])
        assert all(prefs[docs.index(d)] is P.UNALIGNED for d in r["negative"])
    only_pos = preference_records("q", docs[:2], [P.ALIGNED, P.BOTH_CORRECT])
    assert only_pos[0]["positive"] == [] and only_pos[0]["rank_list"] == []
    with pytest.raises(ConfigError):
        preference_records("q", docs, prefs[:2])


# ------------------------------------------------------------------------------------------ losses
def test_pointwise_loss_matches_formula():
    s = torch.tensor([2.0, -1.0, 0.3])
    y = torch.tensor([1, 0, 0])
    ref = (
        -(
            math.log(1 / (1 + math.exp(-2.0)))
            + math.log(1 - 1 / (1 + math.exp(1.0)))
            + math.log(1 - 1 / (1 + math.exp(-0.3)))
        )
        / 3
    )
    assert float(rr.pointwise_loss(s, y)) == pytest.approx(ref, rel=1e-6)


def test_ranknet_equals_bruteforce():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 4, generator=g, dtype=torch.float64)
    ref = []
    for row in s.tolist():
        terms = [
            -math.log(1 / (1 + math.exp(-(row[i] - row[j]))))
            for i, j in itertools.combinations(range(4), 2)
        ]
        ref.append(sum(terms) / 6)
    assert float(rr.ranknet_loss(s)) == pytest.approx(np.mean(ref), rel=1e-10)
    # a list already ordered by a wide margin costs ~0, the reversed list a lot
    assert float(rr.ranknet_loss(torch.tensor([30.0, 20.0, 10.0, 0.0]))) < 1e-4
    assert float(rr.ranknet_loss(torch.tensor([0.0, 10.0, 20.0, 30.0]))) > 10
    with pytest.raises(ConfigError):
        rr.ranknet_loss(torch.zeros(2, 1))


def _supcon_ref(z, labels, tau):
    z = [np.asarray(v) / np.linalg.norm(v) for v in z]
    out = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in range(len(z)) if a != i)
        out.append(-sum(math.log(math.exp(z[i] @ z[p] / tau) / denom) for p in pos) / len(pos))
    return float(np.mean(out))


def test_supcon_equals_bruteforce():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor(
        [[1, 1, 0, 0, 0], [1, 0, 1, 0, 2]]
    )  # label 2 has no positive: anchor left out
    got = float(rr.supcon_loss(z, labels, tau=0.5))
    per = [
        (
            _supcon_ref(z[b].tolist(), labels[b].tolist(), 0.5),
            int(sum(1 for i in range(5) if (labels[b] == labels[b][i]).sum() > 1)),
        )
        for b in range(2)
    ]
    ref = sum(v * n for v, n in per) / sum(n for _, n in per)
    assert got == pytest.approx(ref, rel=1e-9)
    # separated clusters give a lower loss than mixed ones
    sep = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    mixed = sep[[0, 2, 1, 3]]
    lab = torch.tensor([1, 1, 0, 0])
    assert float(rr.supcon_loss(sep, lab, 0.07)) < float(rr.supcon_loss(mixed, lab, 0.07))
    with pytest.raises(ConfigError):
        rr.supcon_loss(sep, torch.tensor([0, 1, 2, 3]))


# -------------------------------------------------------------------------------------------- MGDA
def test_mgda_two_tasks_matches_closed_form_and_simplex():
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = rng.normal(size=(2, 7))
        m = g @ g.T
        a = rr.min_norm_weights(m)
        g1, g2 = g
        gamma = float(np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1))
        assert a == pytest.approx([gamma, 1 - gamma], abs=1e-9)
        assert rr.min_norm_two(m[0, 0], m[0, 1], m[1, 1]) == pytest.approx(tuple(a), abs=1e-12)


def test_mgda_many_tasks_on_simplex_and_near_optimal():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    for t in (3, 4):
        for _ in range(10):
            g = rng.normal(size=(t, 6))
            m = g @ g.T
            a = np.array(rr.min_norm_weights(m, tol=1e-8, max_iter=5000))
            assert a.min() >= 0 and a.sum() == pytest.approx(1.0)
            # Frank-Wolfe without away steps converges sublinearly near a face: within 1%
            best = minimize(
                lambda x, m=m: x @ m @ x,
                np.full(t, 1 / t),
                bounds=[(0, 1)] * t,
                constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                method="SLSQP",
            )
            assert a @ m @ a <= best.fun * 1.01 + 1e-9


def test_mgda_degenerate_and_weighting_modes():
    # identical gradients: any convex mix is optimal and the combined loss equals each loss
    m = np.ones((3, 3))
    a = rr.min_norm_weights(m)
    assert sum(a) == pytest.approx(1.0) and min(a) >= 0
    # a zero gradient is the min-norm point
    assert rr.min_norm_weights(np.diag([0.0, 1.0])) == pytest.approx([1.0, 0.0])
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    l1, l2 = (p**2).sum(), (3 * p).sum()
    w = rr.task_weights([l1, l2], [p], "mgda")
    g1, g2 = np.array([2.0, 4.0]), np.array([3.0, 3.0])
    gamma = float(np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1))
    assert w == pytest.approx([gamma, 1 - gamma])
    assert rr.task_weights([l1, l2], [p], "sum") == [1.0, 1.0]
    assert rr.task_weights([l1, l2], [p], "fixed", [0.2, 0.8]) == [0.2, 0.8]
    with pytest.raises(ConfigError):
        rr.task_weights([l1, l2], [p], "fixed", [1.0])
    with pytest.raises(ConfigError):
        rr.task_weights([l1, l2], [p], "magic")
    with pytest.raises(ConfigError):
        rr.min_norm_weights(np.zeros((2, 3)))


# ------------------------------------------------------------------------------- training a reranker
def _synthetic_records(n: int, seed: int) -> list[dict]:
    """Separable: a helpful document names the question's word after "yes", an unhelpful one
    another word after "no"."""
    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "tiger", "piano", "maple", "ocean"]
    out = []
    for _ in range(n):
        key, other = rng.sample(words, 2)
        pos, neg = f"yes {key}", f"no {other}"
        pos2, neg2 = f"yes, {key}", f"no, {other}"
        prefs = [P.ALIGNED, P.UNALIGNED, P.ALIGNED, P.UNALIGNED]
        out += preference_records(key, [pos, neg, pos2, neg2], prefs, seed=rng.randrange(1 << 30))
    return out


@pytest.fixture(scope="module")
def tiny_ce_dir(tmp_path_factory):
    from solstice.models.tiny import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("ce"), seed=0)


def test_reranker_learns_separable_pairs_and_reloads(tiny_ce_dir, tmp_path):
    train = _synthetic_records(12, seed=0)
    held = _synthetic_records(8, seed=1)
    model = rr.load_reranker(tiny_ce_dir, max_length=32)
    before = rr.classification_report(model, held)
    cfg = rr.RerankerConfig(
        epochs=4, lr=3e-3, batch_size=8, max_length=32, seed=0, weighting="mgda"
    )
    res = rr.train_reranker(train, model, cfg)
    after = rr.classification_report(res.model, held)
    assert after["accuracy"] >= 0.95, (before, after)
    assert {"loss_point", "loss_pair", "loss_contrast"} <= set(res.history[0])
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    # rerank puts the helpful document first
    order = rr.rerank("tiger", ["no cloud", "yes tiger", "no, piano"], res.model, top_k=2)
    assert order[0][0] == 1 and len(order) == 2
    # save → load gives identical scores
    saved = rr.save_reranker(res.model, tmp_path / "rr")
    again = rr.load_reranker(saved, max_length=32)
    pairs = [(r["query"], r["classification"]["text"]) for r in held]
    assert np.allclose(
        res.model.predict(pairs, show_progress_bar=False),
        again.predict(pairs, show_progress_bar=False),
        atol=1e-6,
    )


def test_reranker_seeded_and_mgda_weights_on_simplex(tiny_ce_dir):
    train = _synthetic_records(6, seed=2)
    cfg = rr.RerankerConfig(
        epochs=1, lr=1e-3, batch_size=4, max_length=32, seed=7, weighting="mgda"
    )
    runs = [
        rr.train_reranker(train, rr.load_reranker(tiny_ce_dir, max_length=32), cfg).history
        for _ in range(2)
    ]
    assert runs[0] == runs[1]  # same seed → same losses and weights
    for h in runs[0]:
        w = [v for k, v in h.items() if k.startswith("weight_")]
        assert len(w) == 3 and min(w) >= 0 and sum(w) == pytest.approx(1.0)


def test_reranker_bad_input(tiny_ce_dir):
    with pytest.raises(DataError):
        rr.train_reranker([], str(tiny_ce_dir))
    with pytest.raises(DataError):
        rr.train_reranker(
            [{"query": "q", "classification": {"text": "d", "label": 3}}], str(tiny_ce_dir)
        )
    with pytest.raises(ConfigError):
        rr.RerankerConfig(tasks=("point", "listwise")).validate()
    assert rr.rerank("q", [], None) == []


# ----------------------------------------------------------------------------------- released rows
@needs_data
def test_label_rule_and_scorer_reproduce_released_rows():
    from solstice.data.io import read_jsonl
    from solstice.data.sources import DataSource, resolve

    n_rows = n_answers = 0
    for split in ("valid", "test"):
        path = resolve(
            DataSource("dpa-rag-examples", f"dpa-rag-examples/example_{split}_dataset.jsonl"),
            download=False,
        )
        for row in read_jsonl(path):
            refs = row["reference"]
            for side in ("before", "after"):
                em, f1 = answer_scores(row[side]["answer"], refs)
                assert em == row[side]["em"], (row["question"], side)
                assert f1 == pytest.approx(row[side]["f1"], abs=1e-6), (row["question"], side)
                n_answers += 1
            assert (
                answer_preference(row["before"]["answer"], row["after"]["answer"], refs)
                == row["category"]
            )
            b, a = row["before"], row["after"]
            assert preference(b["em"], b["f1"], a["em"], a["f1"]) == row["category"]
            n_rows += 1
    assert (n_rows, n_answers) == (40, 80)
    train = read_jsonl(
        resolve(
            DataSource("dpa-rag-examples", "dpa-rag-examples/example_train_dataset.jsonl"),
            download=False,
        )
    )
    assert sorted(rr.point_target(r) for r in train) == [0] * 10 + [1] * 10


def test_batch_losses_equal_losses_of_separately_scored_pairs(tiny_ce_dir):
    """Distinct pairs are encoded once per batch; the task losses equal those computed from each
    pair's own score (`predict` without activation)."""
    recs = _synthetic_records(3, seed=4)[:4]
    model = rr.load_reranker(tiny_ce_dir, max_length=32)
    model.model.eval()
    cfg = rr.RerankerConfig(tasks=("point", "pair"), max_length=32)
    with torch.no_grad():
        losses = rr._batch_losses(model, recs, cfg)

    def score(q, ds):
        return torch.tensor(model.predict([(q, d) for d in ds], activation_fn=torch.nn.Identity(),
                                          show_progress_bar=False))

    point = torch.stack([score(r["query"], [r["classification"]["text"]])[0] for r in recs])
    targets = torch.tensor([rr.point_target(r) for r in recs])
    assert float(losses["point"]) == pytest.approx(float(rr.pointwise_loss(point, targets)), abs=1e-5)
    lists = torch.stack([score(r["query"], r["rank_list"]) for r in recs])
    assert float(losses["pair"]) == pytest.approx(float(rr.ranknet_loss(lists)), abs=1e-5)


def test_interrupted_training_resumes_from_its_epoch_checkpoint_exactly(tiny_ce_dir, tmp_path):
    train = _synthetic_records(4, seed=5)
    cfg = rr.RerankerConfig(epochs=3, lr=1e-3, batch_size=4, max_length=32, seed=3)
    whole = rr.train_reranker(train, rr.load_reranker(tiny_ce_dir, max_length=32), cfg)
    steps_per_epoch = len([h for h in whole.history if h["epoch"] == 0])

    def crash(rec):  # killed in the middle of the second epoch
        if rec["epoch"] == 1 and rec["step"] == steps_per_epoch + 1:
            raise KeyboardInterrupt

    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        rr.train_reranker(train, rr.load_reranker(tiny_ce_dir, max_length=32), cfg, on_step=crash,
                          checkpoint_dir=ck)
    assert (ck / "state.pt").is_file()
    with pytest.raises(ConfigError, match="checkpoint"):
        rr.train_reranker(train[:-1], rr.load_reranker(tiny_ce_dir, max_length=32), cfg, checkpoint_dir=ck)
    again = rr.train_reranker(train, rr.load_reranker(tiny_ce_dir, max_length=32), cfg, checkpoint_dir=ck)
    assert again.history == whole.history and not (ck / "state.pt").exists()
    for a, b in zip(whole.model.model.parameters(), again.model.model.parameters()):
        assert torch.equal(a, b)
