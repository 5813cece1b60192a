"""Math-LLaVA's optional LLM answer extractor: the official demo-prompted extraction, asked only
where the rule cascade fails, normalised like a rule extraction, cached on the extractor's
fingerprint through `--cache` (a second run asks nothing; another extractor asks again)."""

from __future__ import annotations

import json

import pytest

from conftest import needs_data
from solstice.data.sources import resolve
from solstice.models.loader import load_model
from solstice.papers.math_llava import mathvista as mv
from solstice.papers.math_llava.prompts import DEMO_PROMPT
from solstice.papers.math_llava.run import TESTMINI


def P(**kw) -> mv.Problem:
    base = dict(pid="x", question="q", image="images/x.png", choices=None, unit=None, precision=None, answer="3",
                question_type="free_form", answer_type="integer", metadata={})
    return mv.Problem(**{**base, **kw})


MC = P(pid="1", question="Which?", choices=("12", "14", "16", "18"), answer="14", question_type="multi_choice",
       answer_type="text")
INT = P(pid="2", question="How many?", answer="7")
FLOAT = P(pid="3", question="How long?", answer="1.2", answer_type="float", precision=1)


def test_request_is_the_demo_then_the_query_then_the_response():
    req = mv.extractor_request("I would pick the second one", MC)
    demo = DEMO_PROMPT.strip()
    assert req.startswith("Please read the following example.") and req.startswith(demo)
    assert req == f"{demo}\n\n{mv.build_query(MC)}\n\nI would pick the second one\n\nExtracted answer: "
    assert req.count("Extracted answer:") == 6  # five worked examples (one per answer format) + the item's


def test_cascade_failures_are_the_unparsed_non_empty_responses_only():
    responses = ["The answer is (B).", "no idea", "", "seven", "   ", "7"]
    problems = [MC, MC, MC, INT, INT, INT]
    assert mv.cascade_failures(responses, problems) == [1, 3]  # parsed ones and empty ones are never asked


@pytest.mark.parametrize("prob, reply, prediction, correct", [
    (MC, "B", "14", True),                      # an option letter -> its choice
    (MC, "(B) 14", "14", True),                 # a letter in parentheses
    (MC, " 16\nHint: more text", "16", False),  # first line only, then the exact choice text
    (INT, "7", "7", True),
    (INT, "7.0", "7", True),                    # integer normalisation
    (FLOAT, "1.23", "1.2", True),               # rounded to the problem's precision
    (INT, "seven", None, False),                # not a number: no prediction, still wrong
])
def test_llm_reply_goes_through_the_same_normalisation(prob, reply, prediction, correct):
    row = mv.score_responses(["I cannot read the figure"], [prob], {prob.pid: reply})[0]
    assert row["extracted_by"] == "llm" and row["parsed"]
    assert row["prediction"] == prediction and row["correct"] is correct
    rule = mv.score_responses([reply.strip().splitlines()[0]], [prob])[0]  # the same text as a direct response
    assert rule["prediction"] == row["prediction"]


def test_parsed_responses_ignore_the_extractor_and_empty_replies_stay_unparsed():
    row = mv.score_responses(["The answer is (C)."], [MC], {MC.pid: "B"})[0]
    assert row["extracted_by"] == "rules" and row["prediction"] == "16"
    row = mv.score_responses(["no idea"], [MC], {MC.pid: "  \n "})[0]
    assert row["extracted_by"] == "none" and not row["parsed"] and not row["correct_strict"]


# -- through a run: the extractor role, the map and the run's --cache --------------------------
TARGET = "fake:choice=The answer is (B).|no idea|7"
SETS = ["images=text_only", "questions=24", "pipeline_figures=0", "random_runs=0"]


def _scored(run):
    return [json.loads(x) for x in (run.path / "artifacts" / "scored.jsonl").read_text().splitlines()]


def _rows(run, key):
    lines = (run.path / "samples.jsonl").read_text().splitlines()
    return {r["sample_id"]: r for r in map(json.loads, lines) if r.get("key") == key}


@needs_data
def test_extractor_asked_on_failures_only_cached_per_model(tmp_path):
    from solstice.core.runner import run_paper

    cache = tmp_path / "cache"
    ext_b, ext_a = "fake:const=B", "fake:const=A"
    first = run_paper("math_llava", out=tmp_path / "runs", sets=SETS, models=[f"target={TARGET}", f"extractor={ext_b}"],
                      cache=cache)
    assert first.status == "completed"
    responses = _rows(first, "responses")
    scored = _scored(first)
    by_pid = {r["pid"]: r for r in scored}
    asked = set(_rows(first, "extractions"))
    failed = {pid for pid, r in by_pid.items() if r["extracted_by"] != "rules" and responses[pid]["response"].strip()}
    assert asked == failed and 0 < len(asked) < len(scored)  # some parse, some are asked
    assert {pid for pid, r in by_pid.items() if r["extracted_by"] == "llm"} == asked
    assert first.metrics["llm_extracted"].value == len(asked) and first.metrics["unparsed"].value == 0
    assert first.metrics["acc[question_type=multi_choice]"].n + first.metrics["acc[question_type=free_form]"].n == 24
    assert load_model(ext_b).calls == len(asked)
    meta = json.loads((first.path / "run.json").read_text())
    assert meta["models"]["extractor"]["fingerprint"]  # the extractor is cached on its fingerprint

    again = run_paper("math_llava", out=tmp_path / "runs", sets=SETS,
                      models=[f"target={TARGET}", f"extractor={ext_b}"], cache=cache)
    assert load_model(ext_b).calls == len(asked)  # a new run, every extraction served from the cache
    assert {k: v.to_json() for k, v in again.metrics.items()} == {k: v.to_json() for k, v in first.metrics.items()}

    other = run_paper("math_llava", out=tmp_path / "runs", sets=SETS,
                      models=[f"target={TARGET}", f"extractor={ext_a}"], cache=cache)
    assert load_model(ext_a).calls == len(asked)  # another extractor: no hit, asked again
    assert set(_rows(other, "extractions")) == asked
    problems = {p.pid: p for p in mv.load_testmini(resolve(TESTMINI))}
    mc = [pid for pid in asked if problems[pid].choices]
    assert mc  # the letter each extractor gave, mapped to its choice
    assert all(by_pid[pid]["prediction"] == problems[pid].choices[1] for pid in mc)
    assert all({r["pid"]: r for r in _scored(other)}[pid]["prediction"] == problems[pid].choices[0] for pid in mc)


@needs_data
def test_without_an_extractor_none_is_loaded_and_failures_are_counted(tmp_path):
    from solstice.core.runner import resolve_models, run_paper
    from solstice.papers.math_llava import PAPER

    assert resolve_models(PAPER, {}, ["fake:echo"])["extractor"] == ""  # a bare spec leaves it unset
    assert resolve_models(PAPER, {}, ["extractor=fake:echo"])["extractor"] == "fake:echo"
    run = run_paper("math_llava", out=tmp_path / "runs", sets=SETS, models=[TARGET])
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["model_specs"]["extractor"] == "" and "extractor" not in meta["models"] or \
        meta["models"]["extractor"] == {"spec": ""}
    assert not _rows(run, "extractions")
    assert run.metrics["llm_extracted"].value == 0 and run.metrics["unparsed"].value > 0
    unparsed = run.metrics["unparsed"]
    assert f"the {round(unparsed.value * unparsed.n)} rule-cascade failures" in run.metrics["llm_extracted"].note


@needs_data
def test_rescore_with_an_extractor_reuses_the_responses(tmp_path):
    from solstice.core.rescore import rescore
    from solstice.core.runner import run_paper

    target = "fake:choice=The answer is (C).|I do not know|3"
    first = run_paper("math_llava", out=tmp_path / "runs", sets=[*SETS, "model_synthesis_figures=2"],
                      models=[f"target={target}"])
    generated = load_model(target).calls
    assert generated > 24 and "model_synth_pairs" in first.metrics  # responses + the four operators
    again = rescore(first.path, ["extractor=fake:const=A"], out=tmp_path / "re")
    assert load_model(target).calls == generated  # responses and synthesis reused, never regenerated
    assert again.metrics["model_synth_pairs"].to_json() == first.metrics["model_synth_pairs"].to_json()
    assert _rows(again, "responses") == _rows(first, "responses")
    failures = round(first.metrics["unparsed"].value * 24)
    assert len(_rows(again, "extractions")) == failures > 0
    assert again.metrics["llm_extracted"].value == failures and again.metrics["unparsed"].value == 0
