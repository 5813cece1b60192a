"""LLM rationality (2406.17055), inverse modelling: stimuli, Jern's data, rational models, pairwise
prompts, flip bookkeeping, aggregation and scripted judges; plus an end-to-end run."""

from __future__ import annotations

import itertools
import json
import re

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
from solstice.papers.llm_rationality import inverse as inv
from solstice.papers.llm_rationality import stimuli as S
from solstice.papers.llm_rationality.config import Config

EIGHT = ["dcbax", "bax", "ax/bx", "ax/b", "x/a", "x/ba", "x/a/b", "x/a/b/c/d"]  # weak -> strong (design only)


# -- reading a pair prompt back (what a scripted judge sees) -----------------------------------
def read_pair(text: str) -> tuple[str, list[tuple[list[list[str]], int]]]:
    target = re.search(r"likes (.+?) candies\?|finds shocks at (.+?) relatively tolerable\?", text)
    x = target.group(1) or target.group(2)
    blocks = re.split(r"Choice [12] (?:contained only one option|was made between the following (?:bags|sets of shocks)): \n", text)[1:3]
    out = []
    for b in blocks:
        body = b.split("The person making the choice chose")[0]
        options = [o.split(", ") for o in re.findall(r"(?:Bag|Set) \d+: (.*?)\. \n", body)]
        chosen = int(re.search(r"chose (?:Bag|Set) (\d+)", b).group(1)) - 1
        out.append((options, chosen))
    return x, out


def relabel_key(options: list[list[str]], chosen: int, target: str) -> str:
    """A choice's identity up to renaming the non-target items."""
    others = sorted({it for o in options for it in o if it != target})
    best = None
    for perm in itertools.permutations("abcd", len(others)):
        name = dict(zip(others, perm)) | {target: "x"}
        opts = [tuple(name[it] for it in o) for o in options]
        key = S.Stimulus("", tuple([opts[chosen], *[o for k, o in enumerate(opts) if k != chosen]])).canonical
        best = key if best is None or key < best else best
    return best


def stimulus_key(st: S.Stimulus) -> str:
    return relabel_key([list(o) for o in st.options], 0, "x")


class PairJudge(Model):
    """Scripted judge: P('Choice 1') from a function of the two shown choices' keys."""

    capabilities = frozenset({CAP_GENERATE, CAP_LABEL_LOGPROBS})

    def __init__(self, fn):
        self.spec = ModelSpec("script", "judge", {}, "script:judge")
        self.fn = fn

    def _p1(self, prompt):
        x, (c1, c2) = read_pair(self.render(prompt))
        return self.fn(relabel_key(*c1, x), relabel_key(*c2, x))

    def label_logprobs(self, prompts, labels):
        out = []
        for pr in prompts:
            p = min(max(self._p1(pr), 1e-9), 1 - 1e-9)
            out.append({labels[0]: np.log(p), labels[1]: np.log(1 - p)})
        return out

    def generate(self, prompts, params=None):
        p = params or GenParams()
        return [[Completion("Choice 1" if self._p1(pr) > 0.5 else "Choice 2", 2)] * p.n for pr in prompts]


def _judge(stimuli, judge, framing="positive", participants=1, estimator="logprobs", method="zero_shot"):
    cfg = Config()
    per = []
    for k in range(participants):
        items = inv.build_pairs(stimuli, framing, method, k, seed=0)
        fn = inv.Judge(cfg, judge, framing, method, estimator, seed=0, key=f"p{k}")
        per.append(fn([Sample(f"{it.i}-{it.j}", it) for it in items]))
    return per


# -- stimuli and ranks -------------------------------------------------------------------------
def test_labels_canonicalise():
    assert S.canonical("x/dc/ba") == S.canonical("x/ba/dc") == "x/ab/cd"
    assert S.canonical("x/b/a") == S.canonical("x/a/b")
    assert S.canonical("bax/c") == "abx/c" and S.canonical("c/bax") != S.canonical("bax/c")
    assert S.parse_label("dcb/ax", chosen="last").canonical == "ax/bcd"
    with pytest.raises(Exception, match="bad choice label"):
        S.parse_label("x/q")


def test_rank_transforms():
    assert S.average_ranks([1, 4, 5, 5]).tolist() == [1, 2, 3.5, 3.5]
    assert S.jern_ranks([0.1, 0.1003, 0.1006, 0.2]).tolist() == [2, 2, 2, 4]  # chained ties within 5e-4
    assert S.jern_ranks([0.3, 0.1, 0.2]).tolist() == [3, 1, 2]


def test_rational_models_order_and_seed_stability():

    st = [S.parse_label(s) for s in EIGHT]
    a = S.model_ranks(st, "positive", n_samples=40_000, seed=0, scale=1.0, threshold=5e-4)
    b = S.model_ranks(st, "positive", n_samples=40_000, seed=1, scale=1.0, threshold=5e-4)
    for name in ("absolute_utility", "relative_utility"):
        # dcbax among the weakest (ax/bx, with x in every option, is as uninformative); x/a/b/c/d in the top two
        # (x/ba, x preferred to a bag of two, can be stronger evidence of a high u_x)
        assert a[name][0] <= 2.5 and a[name][-1] >= 7
    assert a["forgone_options"] == b["forgone_options"]
    scores = S.rational_scores(st, n_samples=40_000, seed=0)
    again = S.rational_scores(st, n_samples=40_000, seed=1)
    for name in S.RATIONAL:  # other seeds move the estimates only by Monte Carlo error (near-ties may swap ranks)
        assert np.allclose(scores[name], again[name], rtol=0.05, atol=0.05), name
    assert scores["absolute_utility"][0] == pytest.approx(4.0, abs=0.05)  # a forced choice leaves the prior mean
    assert 0 < scores["relative_utility"][-1] <= 1 and scores["marginal_likelihood"][0] == pytest.approx(1.0)
    neg = S.rational_scores(st, sign=-1.0, n_samples=40_000, seed=0)
    assert neg["absolute_utility"][0] == pytest.approx(-4.0, abs=0.05)


# -- pair prompts and scoring ------------------------------------------------------------------
def test_pairs_are_complete_seeded_and_render_both_framings():
    st = [S.parse_label(s) for s in EIGHT]
    pos = inv.build_pairs(st, "positive", "zero_shot", 0, seed=0)
    assert len(pos) == 28 and {(p.i, p.j) for p in pos} == set(itertools.combinations(range(8), 2))
    assert [p.prompt for p in pos] == [p.prompt for p in inv.build_pairs(st, "positive", "zero_shot", 0, seed=0)]
    assert [p.prompt for p in pos] != [p.prompt for p in inv.build_pairs(st, "positive", "zero_shot", 1, seed=0)]
    assert 0.25 < np.mean([p.flip for p in pos]) < 0.75
    for p in pos:
        x, (c1, c2) = read_pair(p.prompt)
        first, second = (p.j, p.i) if p.flip else (p.i, p.j)
        assert relabel_key(*c1, x) == stimulus_key(st[first]) and relabel_key(*c2, x) == stimulus_key(st[second])
        assert p.prompt.endswith('Please respond with either "Choice 1" or "Choice 2". Do not include anything else in your answer. ')
    neg = inv.build_pairs(st, "negative", "cot", 0, seed=0)
    assert "shock location" in neg[0].prompt and neg[0].prompt.endswith("Let's think step by step. ")
    x, _ = read_pair(neg[0].prompt)
    assert x.startswith("shock location")


@pytest.mark.parametrize("text,want", [
    ("Choice 1", 1.0), ("choice 2.", 0.0), ("Choice 1 more strongly suggests it, unlike choice 2", 1.0),
    ("**Choice 2** more strongly suggests", 0.0), ("Choice 1 and Choice 2 are equal", None), ("no idea", None),
])
def test_parse_pair_answer(text, want):
    assert inv.parse_pair_answer(text) == want


def test_parse_requery():
    assert [inv.parse_requery(t) for t in ["Choice 1", "Choice 2", "Tie", "1 or 2", "?"]] == [1.0, 0.0, 0.5, None, None]


def test_oracle_judge_reproduces_the_human_order_and_flips_are_undone():
    st = [S.parse_label(s) for s in EIGHT]
    rank = {stimulus_key(s): k + 1 for k, s in enumerate(st)}
    oracle = PairJudge(lambda a, b: 1.0 if rank[a] > rank[b] else 0.0)
    for est in ("logprobs", "sample"):
        per = _judge(st, oracle, estimator=est)
        assert all(r["h"] == (1.0 if r["j"] < r["i"] else 0.0) for r in per[0])  # i < j: j is always stronger
        mean, std = inv.aggregate(per, len(st))
        assert mean.tolist() == [1, 2, 3, 4, 5, 6, 7, 8] and std == 0.0


def test_position_biased_judge_gives_flip_driven_noise():
    st = [S.parse_label(s) for s in EIGHT]
    always1 = PairJudge(lambda a, b: 1.0)
    per = _judge(st, always1, participants=3)
    for rec in per:
        assert all(r["h"] == (0.0 if r["flip"] else 1.0) for r in rec)
        assert np.mean([(1 - r["h"]) if r["flip"] else r["h"] for r in rec]) == 1.0
    m = inv.win_matrix(per[0], 8)
    assert np.allclose(m + m.T, 1 - np.eye(8))
    assert inv.participant_ranks(per[0], 8).tolist() == S.average_ranks(m.sum(1)).tolist()


def test_cot_requery_path():
    class Wordy(PairJudge):
        def generate(self, prompts, params=None):
            texts = [(pr[-1]["content"] if not isinstance(pr, str) else pr) for pr in prompts]
            return [[Completion("Tie" if t.startswith("Based on the following response") else "Both are informative.", 3)]
                    for t in texts]

    st = [S.parse_label(s) for s in EIGHT[:3]]
    per = _judge(st, Wordy(lambda a, b: 0.5), method="cot", estimator="sample")
    assert all(r["requeried"] and r["h"] == 0.5 and r["condensed"] == "Tie" for r in per[0])


# -- the real data -----------------------------------------------------------------------------
def _paths(framing):
    return {k: shared_data() / src.path for k, src in S.sources(framing).items()}


@needs_data
@pytest.mark.parametrize("framing", ["positive", "negative"])
def test_jern_data_loads_and_maps_subjects(framing):
    d = S.load_inverse(framing, _paths(framing))
    assert len(d.stimuli) == 47 and len({stimulus_key(s) for s in d.stimuli}) == 47  # distinct even up to renaming
    assert d.stimuli[0].label == "dcbax" and np.all(np.diff(d.human) >= 0)
    assert np.allclose(d.subjects.mean(0), d.human, atol=1e-6)
    assert d.subjects.shape == ((41, 47) if framing == "positive" else (39, 47))
    jern = [ln.strip() for ln in _paths(framing)["jern_labels"].read_text().splitlines() if ln.strip()]
    diff = [(a, s.label) for a, s in zip(jern, d.stimuli) if a != s.label]
    assert len(diff) == (2 if framing == "negative" else 0)  # x/dc/ba vs x/ba/dc, x/b/a vs x/a/b
    assert all(S.canonical(a) == S.canonical(b) for a, b in diff)


@needs_data
def test_oracle_on_all_47_and_rational_models_on_human_data():
    from scipy.stats import spearmanr

    d = S.load_inverse("positive", _paths("positive"))
    rank = {stimulus_key(s): h for s, h in zip(d.stimuli, d.human)}
    per = _judge(d.stimuli[::2], PairJudge(lambda a, b: 1.0 if rank[a] > rank[b] else 0.0))
    mean, _ = inv.aggregate(per, len(d.stimuli[::2]))
    assert spearmanr(mean, d.human[::2]).statistic == pytest.approx(1.0)
    biased = _judge(d.stimuli[::2], PairJudge(lambda a, b: 1.0))
    assert abs(spearmanr(inv.aggregate(biased, 24)[0], d.human[::2]).statistic) < 0.45
    ranks = S.model_ranks(d.stimuli, "positive", n_samples=100_000, seed=0, scale=1.0, threshold=5e-4)
    again = S.model_ranks(d.stimuli, "positive", n_samples=100_000, seed=1, scale=1.0, threshold=5e-4)
    assert spearmanr(ranks["relative_utility"], again["relative_utility"]).statistic > 0.98  # stable across seeds
    lab = [s.label for s in d.stimuli]
    assert ranks["relative_utility"][lab.index("dcbax")] <= 12 and ranks["relative_utility"][lab.index("x/a/b/c/d")] >= 40
    assert spearmanr(ranks["relative_utility"], d.human).statistic > 0.95


@needs_data
def test_end_to_end_small_run_with_a_second_model(tmp_path):
    from solstice.core.runner import run_paper

    sets = ["rows=5", "modes=[individual_zero_shot,aggregate_zero_shot]", "mode_rows={aggregate_zero_shot: 2}",
            "aggregate_max_tokens=6", "fit_rows=200", "framings=[positive]", "inverse_choices=4", "participants=2",
            "prior_samples=5000"]
    res = run_paper("llm_rationality", scale="smoke", sets=sets, models=["tiny:llama"], out=tmp_path)
    assert res.status == "completed", res.error
    m = res.metrics
    assert m["individual_zero_shot/parse_rate"].value == 1.0 and m["individual_zero_shot/r_model_human"].n == 5
    assert m["human/phi_human_ev"].n == 5 and m["human_all/phi_human_ev"].n == 14568
    assert m["inv/positive/zero_shot/parse_rate"].value == 1.0 and m["inv/positive/zero_shot/rank_std"].n == 2
    rows = [json.loads(ln) for ln in (res.path / "samples.jsonl").read_text().splitlines()]
    assert sum(r["key"].startswith("inverse/positive/zero_shot/logprobs/p") for r in rows) == 12
    assert (res.path / "artifacts" / "forward.png").is_file() and (res.path / "artifacts" / "forward_rows.csv").is_file()
