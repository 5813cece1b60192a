"""Math-LLaVA's MathVista scorer: oracle and degenerate predictors, normalisation and extraction
tables, breakdown sums, strict vs lenient, the duplicate-choice items, the query format."""

from __future__ import annotations

import random

import pytest

from conftest import needs_data
from solstice.data.sources import resolve
from solstice.papers.math_llava import mathvista as mv
from solstice.papers.math_llava.run import TESTMINI, evenly, reference_checks


@pytest.fixture(scope="module")
def problems():
    return mv.load_testmini(resolve(TESTMINI))


def P(**kw) -> mv.Problem:
    base = dict(pid="x", question="q", image="images/x.png", choices=None, unit=None, precision=None, answer="3",
                question_type="free_form", answer_type="integer", metadata={})
    return mv.Problem(**{**base, **kw})


MC = P(choices=("12", "14", "16", "18"), answer="14", question_type="multi_choice", answer_type="text")


@needs_data
def test_data_facts(problems):
    from collections import Counter

    assert len(problems) == 1000
    assert Counter(p.question_type for p in problems) == {"multi_choice": 540, "free_form": 460}
    assert Counter(p.answer_type for p in problems) == {"text": 540, "integer": 418, "float": 40, "list": 2}
    assert Counter(mv.TASK_ABBR[p.metadata["task"]] for p in problems) == {
        "FQA": 269, "GPS": 208, "MWP": 186, "VQA": 179, "TQA": 158}
    assert [p.pid for p in problems if p.choices and len(set(p.choices)) < len(p.choices)] == ["587", "740", "781"]


@needs_data
def test_oracle_random_and_first_or_two_golden_values(problems):
    ref = reference_checks(problems, runs=20)
    assert ref["oracle_acc"].value == 1.0
    assert ref["random_analytic_acc"].value == pytest.approx(0.1790, abs=5e-5)
    assert abs(ref["random_runs_mean_acc"].value - 0.179) < 0.005
    assert ref["first_or_two_acc"].value == pytest.approx(0.224)
    # every gold answer, given as its own text, survives its normalisation (choices "(b)" included)
    rows = mv.score_responses([p.answer for p in problems], problems)
    assert all(r["correct"] for r in rows)


@needs_data
def test_breakdowns_sum_to_totals_and_skills_are_multilabel(problems):
    rng = random.Random(0)
    rows = mv.score_responses([rng.choice(["(A)", "2", "1.5", ""]) for _ in problems], problems)
    total = sum(r["correct"] for r in rows)
    for key in mv.BREAKDOWNS:
        table = mv.breakdown(rows, problems, key)
        if key == "skills":
            n_labels = sum(len(p.metadata["skills"]) for p in problems)
            assert sum(t for _, t in table.values()) == n_labels > 1000
        else:
            assert sum(t for _, t in table.values()) == 1000
            assert sum(c for c, _ in table.values()) == total
    flags = mv.breakdown_flags(rows, problems)  # the per-item flags behind the breakdown metrics' CIs
    assert set(flags) == set(mv.BREAKDOWNS)
    for key in mv.BREAKDOWNS:
        assert {v: (sum(f), len(f)) for v, f in flags[key].items()} == mv.breakdown(rows, problems, key)


@needs_data
def test_duplicate_choice_items_map_each_letter_to_its_own_choice(problems):
    for p in (x for x in problems if x.pid in ("587", "740", "781")):
        for letter, text in zip(p.letters, p.choices):
            assert mv.normalize(f"({letter})", p) == text


NORMALISE = [
    (MC, "(B)", "14"), (MC, "B", "14"), (MC, "b) 12", "12"),  # no "(X)": nearest choice by edit distance
    (MC, "16", "16"), (MC, "(c) sixteen", "16"),
    (P(answer_type="float", precision=1, answer="1.2"), "1.20", "1.2"),
    (P(answer_type="float", precision=2, answer="1.25"), "1.254", "1.25"),
    (P(), "3.0", "3"), (P(), "abc", None),
    (P(answer_type="list", answer="[1, 2]"), "[1, 2]", "[1, 2]"),
]


@pytest.mark.parametrize("prob,x,want", NORMALISE)
def test_normalisation_table(prob, x, want):
    assert mv.normalize(x, prob) == want


def test_strict_scores_unparsed_mc_wrong_where_lenient_guesses():
    lenient = mv.score_responses(["I think fourteen-ish"], [MC])[0]
    assert lenient["parsed"] is False and lenient["prediction"] in MC.choices
    assert lenient["correct_strict"] is False
    # parsed answers score the same both ways
    for resp in ("(B)", "The answer is B", "14", "(D)"):
        r = mv.score_responses([resp], [MC])[0]
        assert r["parsed"] and r["correct"] == r["correct_strict"]


EXTRACT = [
    (MC, "", ("", False)),
    (MC, "14", ("14", True)),                             # equals a choice
    (MC, "Between (A) and (C), the answer is (C)", ("(C)", True)),  # the last "(X)"
    (MC, "So the answer is B.", ("(B)", True)),
    (MC, "Answer: d", ("(D)", True)),
    (MC, "Looks like D", ("(D)", True)),
    (MC, "no idea", ("no idea", False)),
    (P(), "7", ("7", True)),
    (P(), "First 3 apples, then 4 more: 7 in total.", ("7", True)),  # the last number
    (P(), 'The answer is "12".', ("12", True)),
    (P(answer_type="list", answer="[1, 2]"), "so [1, 2] and finally [3, 4]", ("[3, 4]", True)),
    (P(), "none", ("none", False)),
]


@pytest.mark.parametrize("prob,resp,want", EXTRACT)
def test_extraction_table(prob, resp, want):
    assert mv.extract(resp, prob) == want


@needs_data
def test_query_format_of_the_official_script(problems):
    q = mv.build_query(next(p for p in problems if p.pid == "5"))
    assert q == ("Question: Find $m\\angle H$\nChoices:\n(A) 97\n(B) 102\n(C) 107\n(D) 122\n"
                 "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
                 "Solution:")
    q2 = mv.build_query(next(p for p in problems if p.pid == "2"))
    assert q2.startswith("Question: what is the total volume of the measuring cup? (Unit: g)\nHint: ")


@needs_data
def test_evenly_spaced_subset(problems):
    sub = evenly(problems, 100)
    assert len(sub) == 100 and sub[0] is problems[0] and sub[-1] is problems[-1]
    assert evenly(problems, 5000) == problems


# -- selection and synthesis on procedural figures -------------------------------------------
from solstice.papers.math_llava import figures as F  # noqa: E402
from solstice.papers.math_llava import synthesis as S  # noqa: E402
from solstice.papers.math_llava.selection import Candidate, ImageSelector, laplacian_variance  # noqa: E402


def test_selector_hits_level_ratio_caps_sources_and_drops_unclear():
    cands = [Candidate(f"c{i}", f"src{i % 4}", {"clear": i % 10 != 0, "cx": (i * 7919) % 1000 / 1000})
             for i in range(2000)]
    sel = ImageSelector(clarity=lambda im: 1.0 if im["clear"] else 0.0, complexity=lambda im: im["cx"],
                        clarity_threshold=0.5, level_edges=[0.25, 0.5, 0.75], level_ratio={0: 0.1, 1: 0.3, 2: 0.4, 3: 0.2},
                        per_source_cap=120, seed=3)
    out = sel.select(cands, 400)
    levels = [lv for _, lv in out]
    assert len(out) == 400
    assert all(abs(levels.count(k) / 400 - r) <= 0.02 for k, r in {0: 0.1, 1: 0.3, 2: 0.4, 3: 0.2}.items())
    assert all(c.image["clear"] for c, _ in out)
    from collections import Counter

    assert max(Counter(c.source for c, _ in out).values()) <= 120
    assert [c.id for c, _ in sel.select(cands, 400)] == [c.id for c, _ in out]  # seeded
    with pytest.raises(Exception, match="level_ratio"):
        ImageSelector(level_edges=[0.5], level_ratio={0: 0.5, 1: 0.6}).select(cands, 10)


def test_clarity_proxy_ranks_degraded_below_clean():
    rng = random.Random(0)
    figs = F.make_figures(10, seed=0)
    clean = [laplacian_variance(F.render(f)) for f in figs]
    blurred = [laplacian_variance(F.degrade(F.render(f), rng)) for f in figs]
    assert min(clean) > max(blurred)


def test_synthetic_data_is_deterministic_verified_and_tagged():
    figs = F.make_figures(40, seed=5)
    a, sa = S.build_dataset(figs, seed=1)
    b, sb = S.build_dataset(figs, seed=1)
    assert a == b and sa == sb
    assert sa["wrong"] == 0 and sa["verified"] == sa["accepted"] > 100
    assert {d["origin"] for d in a} == set(S.ORIGINS)
    assert all(d["conversations"][0]["value"].startswith("<image>\n") for d in a)
    assert len({d["id"] for d in a}) == len(a)


@needs_data
def test_no_synthetic_item_duplicates_a_testmini_question(problems):
    fig = F.make_figures(1, seed=0)[0]
    qa = S.original_qa(fig, random.Random(0))
    _, st = S.validate([qa], {fig.fid: fig}, banned=[qa.question.upper()])  # normalised text match
    assert st["duplicate"] == 1
    data, _ = S.build_dataset(F.make_figures(50, seed=0), banned=[p.question for p in problems])
    testmini = {S.norm_q(p.question) for p in problems}
    assert not any(S.norm_q(d["conversations"][0]["value"].removeprefix("<image>\n")) in testmini for d in data)


def test_validator_rejects_wrong_answers_and_parses_model_replies():
    fig = F.Figure("t", "triangle", {"a": 3, "b": 4, "c": 5}, 3)
    reply = ("1. Question: What is the area of triangle ABC? Answer: 6.\n"
             "2. Question: What is the perimeter of the triangle? Answer: 13\n"
             "Question: What colour is the triangle? Answer: black")
    pairs = [S.QA("t", "mining", q, a) for q, a in S.parse_pairs(reply)]
    assert [p.answer for p in pairs] == ["6", "13", "black"]
    kept, st = S.validate(pairs, {"t": fig}, keep_unverified=True)
    assert st == {"generated": 3, "accepted": 2, "verified": 1, "bad_answer": 0, "duplicate": 0, "wrong": 1,
                  "unverifiable": 1}
    assert [k.verified for k in kept] == [True, None]


# -- training path -----------------------------------------------------------------------------
def _llava_records(tmp_path, n=4):
    figs = F.make_figures(n, seed=0)
    for f in figs:
        F.render(f).save(tmp_path / f"{f.fid}.png")
    data, _ = S.build_dataset(figs, seed=0)
    return data


def test_llava_json_becomes_vision_messages_with_image_parts(tmp_path):
    from solstice.errors import DataError
    from solstice.papers.math_llava.train import llava_to_messages

    data = _llava_records(tmp_path)
    rows = llava_to_messages(data, tmp_path)
    assert len(rows) == len(data)
    r = rows[0]
    assert r["messages"][0]["content"][0] == {"type": "image"} and len(r["images"]) == 1
    assert "<image>" not in r["messages"][0]["content"][1]["text"]
    assert r["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": data[0]["conversations"][1]["value"]}]}
    with pytest.raises(DataError, match="missing"):
        llava_to_messages(data, tmp_path / "nowhere")


@pytest.mark.slow
def test_tiny_vlm_sft_steps_run_and_lower_the_loss(tmp_path):
    pytest.importorskip("trl")
    from solstice.models.tiny import build_tiny_vlm
    from solstice.papers.math_llava.train import llava_to_messages, sft

    rows = llava_to_messages(_llava_records(tmp_path, 2)[:4], tmp_path)
    model, proc = build_tiny_vlm("llava")
    trainer = sft(model, proc, rows, tmp_path / "out", steps=4, lr=1e-2, batch_size=2, cpu=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 4 and losses[-1] < losses[0]
