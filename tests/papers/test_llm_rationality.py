"""LLM rationality (2406.17055), forward modelling: rendering, parsing, estimators, scripted agents,
reference models, and golden values of the human data. None of these depend on model quality."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from conftest import needs_data, shared_data
from solstice.core.types import Sample
from solstice.models.base import (
    CAP_GENERATE,
    CAP_LABEL_LOGPROBS,
    Completion,
    GenParams,
    Model,
    ModelSpec,
)
from solstice.models.fake import FakeModel
from solstice.papers.llm_rationality import forward as F
from solstice.papers.llm_rationality import gambles as G
from solstice.papers.llm_rationality import theories as T
from solstice.papers.llm_rationality.config import Config


# -- scripted agents ---------------------------------------------------------------------------
class Chooser(Model):
    """A deterministic agent: `p_fn(prompt text) -> P(answer A)`; label log-probs are log p and
    log(1 - p); sampling draws A/B from the same distribution at the requested temperature."""

    capabilities = frozenset({CAP_GENERATE, CAP_LABEL_LOGPROBS})

    def __init__(self, p_fn, labels=("A", "B")):
        self.spec = ModelSpec("script", "chooser", {}, "script:chooser")
        self.p_fn, self.labels = p_fn, labels

    def _lp(self, prompt):
        p = min(max(self.p_fn(self.render(prompt)), 1e-12), 1 - 1e-12)
        return {self.labels[0]: math.log(p), self.labels[1]: math.log(1 - p)}

    def label_logprobs(self, prompts, labels):
        return [self._lp(p) for p in prompts]

    def generate(self, prompts, params=None):
        p = params or GenParams()
        rng = random.Random(p.seed)
        out = []
        for pr in prompts:
            lp = self._lp(pr)
            pa = F.p_from_logprobs(lp[self.labels[0]], lp[self.labels[1]], p.temperature if p.temperature > 0 else 0)
            out.append([Completion(self.labels[0] if rng.random() < pa else self.labels[1], 1) for _ in range(p.n)])
        return out


def _content(text: str) -> str:
    """The user message inside the base Model.render text ('user: ...\nassistant: ')."""
    return text.split("user: ", 1)[1].rsplit("\nassistant: ", 1)[0]


def ev_agent(text: str) -> float:
    g = G.gambles_from_prompt(text)
    ev = {k: sum(p * x for p, x in v) for k, v in g.items()}
    return 1.0 if ev["A"] > ev["B"] + 1e-9 else 0.0 if ev["B"] > ev["A"] + 1e-9 else 0.5


def _records(cfg, model, mode, problems, estimator):
    fn = F.Predictor(cfg, model, mode, estimator, seed=0)
    return fn([Sample(str(p.row), p) for p in problems])


def _refs(problems):
    return {"scheme": "none", "p_a": {"ev": [0.5] * len(problems)}}


PROBS = G.synthetic_problems(120, seed=3)


# -- rendering and EV --------------------------------------------------------------------------
def test_render_matches_the_papers_format_and_is_seeded():
    pr = G.Problem(0, ((0.95, 26.0), (0.050000000000000044, -1.0)), ((1.0, 21.0),), n=15, b_rate=0.6)
    text = G.render_prompt(pr, "individual_zero_shot", shuffle=False)
    assert "Machine A: $26.0 with 95.0% chance, $-1.0 with 5.0% chance. \nMachine B: $21.0 with 100.0% chance. \n" in text
    assert text.endswith("only answer with A or B: ")
    many = [G.render_prompt(p, "aggregate_cot", seed=7) for p in PROBS[:30]]
    assert many == [G.render_prompt(p, "aggregate_cot", seed=7) for p in PROBS[:30]]
    assert many != [G.render_prompt(p, "aggregate_cot", seed=8) for p in PROBS[:30]]  # the shuffle depends on the seed
    for p, t in zip(PROBS[:30], many):
        assert t.startswith(f"{p.n} people are presented")
        for pct in __import__("re").findall(r"([0-9.]+)% chance", t):
            assert len(pct.split(".")[1]) <= 2
        back = G.gambles_from_prompt(t)  # the rendered text carries the exact gambles, outcome order aside
        for k, want in (("A", p.A), ("B", p.B)):
            assert np.allclose(sorted(back[k]), sorted(want))


def test_render_options():
    pr = G.Problem(0, ((0.0, 26.0), (1.0, 3.0)), ((0.5, 10.0), (0.5, -4.0)), n=20, b_rate=0.5, amb=True)
    assert "$26.0 with 0.0% chance" in G.render_prompt(pr, "individual_zero_shot")
    assert "$26.0" not in G.render_prompt(pr, "individual_zero_shot", drop_zero=True)
    amb = G.render_prompt(pr, "individual_zero_shot", render="amb_aware", shuffle=False)
    assert "Machine B: $10.0 with unknown chance, $-4.0 with unknown chance." in amb and "Machine A: $26.0 with 0.0%" in amb


def test_ev_rounds_probabilities_and_ties_go_to_b():
    assert G.expected_value([(0.123456, 100.0), (0.876544, 0.0)]) == pytest.approx(12.35)
    tie = G.Problem(0, ((0.5, 10.0), (0.5, 0.0)), ((1.0, 5.0),), n=15, b_rate=0.5)
    assert G.ev_choice(tie) == "B" and tie.human_choice == "B"


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("A", "A"), (" B", "B"), ("Answer: A", "A"), ("AB", None), ("A or B", None), ("Machine B.", "B"),
    ("", None), ("I pick Bob", None),
])
def test_parse_letter(text, want):
    assert G.parse_letter(text) == want


@pytest.mark.parametrize("text,want", [
    ('Reasoning ... {"choice": "B"}', "B"), ("{'Choice': 'A'}", "A"), ('{"choice": "Machine A"}', "A"),
    ('{"choice": "A"} or maybe {"choice": "B"}', None), ("I choose A", None),
])
def test_parse_cot_choice(text, want):
    assert G.parse_cot_choice(text) == want


@pytest.mark.parametrize("text,want", [
    ('{"Machine A": "60%", "Machine B": "40%"}', 0.6), ('{"Machine A": 0.6, "Machine B": 0.4}', 0.6),
    ('Sure: {"Machine A": 75, "Machine B": 25} done', 0.75), ("{'A': 3, 'B': 12}", 0.2),
    ("the majority would choose Machine A", None), ('{"Machine A": "many"}', None), ("garbage {", None),
])
def test_parse_aggregate(text, want):
    got = G.parse_aggregate(text)
    assert (got is None) if want is None else got == pytest.approx(want)


def test_label_probabilities_sum_to_one():
    for a, b, t in [(-0.1, -3.0, 1.0), (-5.0, -5.0, 0.7), (-2.0, -9.0, 0.3), (-1.0, -math.inf, 1.0)]:
        pa = F.p_from_logprobs(a, b, t)
        assert pa + F.p_from_logprobs(b, a, t) == pytest.approx(1.0)
        if t == 1.0 and math.isfinite(b):
            assert pa == pytest.approx(math.exp(a) / (math.exp(a) + math.exp(b)))
    assert F.p_from_logprobs(-math.inf, -math.inf, 1.0) is None
    assert F.p_from_logprobs(-1.0, -2.0, 0.0) == 1.0


# -- scripted agents through the real pipeline ------------------------------------------------
def test_ev_maximiser_correlates_one_with_ev():
    cfg = Config(temperature=0.7)
    recs = _records(cfg, Chooser(ev_agent), "individual_zero_shot", PROBS, "logprobs")
    m = F.mode_metrics("individual_zero_shot", PROBS, recs, _refs(PROBS))
    assert m["individual_zero_shot/phi_model_ev"].value == pytest.approx(1.0)
    assert m["individual_zero_shot/agree_model_ev"].value == 1.0
    assert m["individual_zero_shot/phi_model_human"].value == pytest.approx(m["individual_zero_shot/phi_human_ev"].value)
    assert m["individual_zero_shot/parse_rate"].value == 1.0


def test_human_replay_correlates_one_with_humans():
    rate = {G.render_prompt(p, "act_individual_zero_shot"): p.a_rate for p in PROBS}
    agent = Chooser(lambda text: rate[_content(text)])
    recs = _records(Config(temperature=1.0), agent, "act_individual_zero_shot", PROBS, "logprobs")
    m = F.mode_metrics("act_individual_zero_shot", PROBS, recs, _refs(PROBS))
    assert m["act_individual_zero_shot/r_model_human"].value == pytest.approx(1.0, abs=1e-9)
    assert m["act_individual_zero_shot/phi_model_human"].value == pytest.approx(1.0)
    # at another temperature the softmax is monotone: rank order kept, Pearson below 1
    recs = _records(Config(temperature=0.5), agent, "act_individual_zero_shot", PROBS, "logprobs")
    from scipy.stats import spearmanr
    assert spearmanr([r["p_a"] for r in recs], [p.a_rate for p in PROBS]).statistic == pytest.approx(1.0)


def test_sampled_estimator_agrees_with_the_shortcut_in_expectation():
    agent = Chooser(lambda text: 0.2 + 0.6 * ev_agent(text))
    cfg = Config(temperature=0.7, samples=400)
    exact = _records(cfg, agent, "individual_zero_shot", PROBS[:40], "logprobs")
    sampled = _records(cfg, agent, "individual_zero_shot", PROBS[:40], "sample")
    assert all(s["n_samples"] == 400 and s["num_none"] == 0 for s in sampled)
    diff = np.mean([abs(a["p_a"] - b["p_a"]) for a, b in zip(exact, sampled)])
    chk = F.sample_check(exact, sampled)
    assert diff < 0.04 and chk["check/mean_abs_diff"].value < 2 * chk["check/expected_abs_diff"].value
    # default sample count is the row's participant count n
    per_row = _records(Config(), agent, "individual_zero_shot", PROBS[:5], "sample")
    assert [r["n_samples"] for r in per_row] == [p.n for p in PROBS[:5]]


def test_fake_model_sampling_path_and_reference_convention():
    replay = FakeModel.from_function(lambda text, i, p: "A" if i % 3 == 0 else ("B" if i % 3 == 1 else "maybe"))
    recs = _records(Config(samples=9), replay, "individual_zero_shot", PROBS[:4], "sample")
    assert all(r["n_a"] == 3 and r["n_b"] == 3 and r["num_none"] == 3 for r in recs)
    assert all(r["p_a"] == 0.5 and r["p_a_ref"] == pytest.approx(1 / 3) for r in recs)
    m = F.mode_metrics("individual_zero_shot", PROBS[:4], recs, _refs(PROBS[:4]))
    assert m["individual_zero_shot/num_none"].value == 12 and m["individual_zero_shot/model_share_a"].value == 0.0


def test_uniform_random_is_uncorrelated_and_noise_lowers_ev_agreement():
    probs = G.synthetic_problems(400, seed=5)
    rng = random.Random(1)
    noise = {G.render_prompt(p, "individual_zero_shot"): rng.random() for p in probs}
    recs = _records(Config(temperature=1.0), Chooser(lambda t: noise[_content(t)]), "individual_zero_shot", probs, "logprobs")
    m = F.mode_metrics("individual_zero_shot", probs, recs, _refs(probs))
    assert abs(m["individual_zero_shot/r_model_ev"].value) < 0.12 and abs(m["individual_zero_shot/r_model_human"].value) < 0.12

    def ev_softmax(tau):
        def f(text):
            g = G.gambles_from_prompt(text)
            d = sum(p * x for p, x in g["A"]) - sum(p * x for p, x in g["B"])
            return 1 / (1 + math.exp(-max(min(d / tau, 50), -50)))
        return f

    rs = []
    ev_a = np.array([G.ev_choice(p) == "A" for p in probs], dtype=float)
    for tau in (0.5, 5.0, 50.0):
        recs = _records(Config(temperature=1.0), Chooser(ev_softmax(tau)), "individual_zero_shot", probs, "logprobs")
        rs.append(F._pearson(np.array([r["p_a"] for r in recs]), ev_a))
    assert rs[0] > rs[1] > rs[2]


def test_generated_modes_parse_scripted_answers():
    agg = FakeModel.from_function(lambda text, i, p: '{"Machine A": "30%", "Machine B": "70%"}')
    recs = _records(Config(), agg, "aggregate_zero_shot", PROBS[:3], "logprobs")
    assert all(r["p_a"] == pytest.approx(0.3) and r["estimator"] == "sample" for r in recs)
    cot = FakeModel.from_function(lambda text, i, p: 'Step 1 ... so {"choice": "B"}')
    recs = _records(Config(cot_samples=2), cot, "individual_cot", PROBS[:3], "logprobs")
    assert all(r["p_a"] == 0.0 and r["n_b"] == 2 for r in recs)


# -- reference models --------------------------------------------------------------------------
def test_prospect_theory_fit_recovers_synthetic_parameters():
    probs = G.synthetic_problems(700, seed=11)
    true = {"alpha": 0.75, "beta": 0.9, "lambda": 1.9, "gamma": 0.6, "delta": 0.8, "phi": 0.2}
    rates = T.p_choose_a("cpt", T.Gambles.of(probs), true)
    start = [{"alpha": 0.5, "beta": 0.5, "lambda": 1.0, "gamma": 1.0, "delta": 1.0, "phi": 0.5}]
    fit = T.fit("cpt", probs, a_rates=rates, starts=start)
    for k, v in true.items():
        assert fit.params[k] == pytest.approx(v, rel=0.05), k


def test_cpt_reduces_to_eu_and_ev():
    probs = G.synthetic_problems(50, seed=2)
    g = T.Gambles.of(probs)
    cpt = T.values("cpt", g, {"alpha": 1.0, "beta": 1.0, "lambda": 1.0, "gamma": 1.0, "delta": 1.0})
    eu = T.values("eu", g, {"alpha": 1.0})
    ev = [np.array([G.expected_value(p.A) for p in probs]), np.array([G.expected_value(p.B) for p in probs])]
    for a, b, c in zip(cpt, eu, ev):
        assert np.allclose(a, b) and np.allclose(b, c, atol=1e-6)
    # a loss-averse, curved CPT values a mixed gamble below its EV
    mixed = T.Gambles.of([G.Problem(0, ((0.5, 10.0), (0.5, -10.0)), ((1.0, 0.0),))])
    va, _ = T.values("cpt", mixed, {"alpha": 0.9, "beta": 0.9, "lambda": 2.0, "gamma": 0.7, "delta": 0.7})
    assert va[0] < 0


def test_reference_fits_hold_out_analysed_problems():
    probs = G.synthetic_problems(300, seed=4)
    dup = [G.Problem(300 + k, p.A, p.B, p.n, p.b_rate, p.amb, not p.feedback, p.problem_id) for k, p in enumerate(probs[:20])]
    refs = F.fit_references(probs + dup, probs[:100], 0, seed=0)
    assert refs["scheme"] == "held-out rows" and refs["n_train"] == 200 - 0  # the 20 duplicates share analysed Problem ids
    assert set(refs["p_a"]) == {"ev", "eu", "cpt"} and all(len(v) == 100 for v in refs["p_a"].values())
    cross = F.fit_references(probs[:60], probs[:60], 0, seed=0)
    assert cross["scheme"] == "5-fold cross-fitting" and not np.isnan(cross["p_a"]["ev"]).any()


# -- the real data -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def c13k():
    root = shared_data()
    return G.load_problems(root / G.SELECTIONS.path, root / G.PROBLEMS.path)


@needs_data
def test_rows_align_with_problem_keys(c13k):
    import pandas as pd

    df = pd.read_csv(shared_data() / G.SELECTIONS.path, nrows=50)
    assert len(c13k) == 14568 and c13k[0].row == 0
    for p, r in zip(c13k, df.itertuples()):
        assert len(p.A) == 2 and {x for _, x in p.A} == {float(r.Ha), float(r.La)}
        assert any(abs(pp - r.pHa) < 1e-9 and x == r.Ha for pp, x in p.A)
        assert p.b_rate == r.bRate and p.n == r.n
        assert sum(pp for pp, _ in p.B) == pytest.approx(1.0)


@needs_data
def test_human_agreement_with_ev_golden_values(c13k):
    first = F.human_metrics(c13k[:2000], "h")
    every = F.human_metrics(c13k, "h")
    assert first["h/phi_human_ev"].value == pytest.approx(0.4904, abs=1e-4)
    assert first["h/agree_human_ev"].value == pytest.approx(0.745)
    assert first["h/ev_tie_share"].value == pytest.approx(0.029)
    assert every["h/phi_human_ev"].value == pytest.approx(0.4836, abs=1e-4)
    assert every["h/agree_human_ev"].value == pytest.approx(0.7419, abs=1e-4)
    assert sum(p.amb for p in c13k) == 2809 and sum(p.feedback for p in c13k) == 12188


@needs_data
def test_ev_agent_on_real_rows_reproduces_the_human_ev_correlation(c13k):
    rows = c13k[:300]
    recs = _records(Config(), Chooser(ev_agent), "individual_zero_shot", rows, "logprobs")
    m = F.mode_metrics("individual_zero_shot", rows, recs, _refs(rows))
    h = F.human_metrics(rows, "h")
    assert m["individual_zero_shot/phi_model_ev"].value == pytest.approx(1.0)
    assert m["individual_zero_shot/phi_model_human"].value == pytest.approx(h["h/phi_human_ev"].value)


def test_config_rejects_unknown_modes():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Config(mode_rows={"nonsense": 3})
    with pytest.raises(ValidationError):
        Config(modes=["individual_zero_shot", "individual_zero_shot"])


def test_sampled_modes_use_the_models_own_concurrency_not_a_hidden_cap():
    from solstice.models.fake import FakeModel
    from solstice.papers.llm_rationality.config import Config
    from solstice.papers.llm_rationality.forward import sampled_batch_size

    endpoint = FakeModel.from_function(lambda t, i, p: "A")
    endpoint.concurrency = 32  # what an openai: model exposes
    assert sampled_batch_size(Config(batch_size=16), endpoint) == 32
    assert sampled_batch_size(Config(batch_size=16, sample_batch_size=4), endpoint) == 4
    assert sampled_batch_size(Config(batch_size=16), FakeModel.from_function(lambda t, i, p: "A")) == 16
