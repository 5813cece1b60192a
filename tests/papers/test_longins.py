"""LongIns: loader golden values, parsers, both F1 rules, model-free predictors, synthetic settings,
prompts and the window policy. Nothing here depends on a model's quality."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from conftest import needs_data, shared_data
from solstice.errors import ConfigError, DataError
from solstice.models.fake import FakeModel
from solstice.models.tokens import WordCounter
from solstice.papers.longins import data as D
from solstice.papers.longins import scoring as S
from solstice.papers.longins.config import Config
from solstice.papers.longins.prompts import GIST_INSTRUCTION_0, GIST_INSTRUCTION_2, build_prompt
from solstice.papers.longins.run import _fit, baseline_scores, score_rows


@pytest.fixture(scope="module")
def released():
    root = shared_data()
    return {L: D.load_samples(root / "longins" / f"GIST_{L}.json", "GIST", L) for L in (256, 512)}


# -- parsers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, strict, ok, upstream", [
    ("[2, 5]", {2, 5}, True, {2, 5}),
    ("Answer: [1][3]", {1, 3}, True, {1, 3}),
    ("[Question 3 is wrong] and also [4]", {4}, True, {3, 4}),
    ("The answers [0:Paragraph: text Answer: no]", set(), False, {0}),
    ("no brackets at all", set(), False, set()),
    ("[]", set(), True, set()),
    ("In 2019 [2019] happened. Answer: [7]", {7}, True, {2019, 7}),
    ("[1,\n 2]", {1, 2}, True, set()),  # the reference does not read across lines
])
def test_parser_table(text, strict, ok, upstream):
    p = S.parse_strict(text)
    assert (set(p.indices), p.ok) == (strict, ok)
    assert set(S.parse_upstream(text)) == upstream


def test_f1_rules():
    assert S.f1_reference({1, 2}, {2, 3}) == pytest.approx(0.5)
    assert S.f1_reference(set(), {1}) == 0 and S.f1_reference({1}, set()) == 0
    assert S.f1_fixed(S.parse_strict("[]"), [], 4) == 1.0  # items, no wrong one, explicit none
    assert S.f1_fixed(S.parse_strict("[1]"), [], 4) == 0.0
    assert S.f1_fixed(S.parse_strict("nothing"), [], 4) == 0.0
    assert S.f1_fixed(S.parse_strict("[]"), [], 0) is None  # no items: unscorable


def test_random_baseline_matches_its_expectation():
    rng = random.Random(3)
    n, g, q = 9, 2, 0.3
    sims = [S.f1_reference(S.parse_strict(S.random_response(n, q, rng)).indices, [0, 1]) for _ in range(20000)]
    se = statistics.pstdev(sims) / len(sims) ** 0.5
    assert abs(statistics.fmean(sims) - S.expected_random_f1(n, g, q)) < 4 * se
    assert S.expected_random_f1(5, 5, 1.0) == pytest.approx(1.0)


# -- released data (golden values from the files) --------------------------------------------------
@needs_data
def test_loader_counts_and_item_headers(released):
    for L, n_empty in ((256, 22), (512, 5)):
        samples = released[L]
        assert len(samples) == 1419
        assert sum(s.empty for s in samples) == n_empty
        for s in samples:
            if not s.empty:
                assert D.item_headers(s.data, "GIST") == list(range(s.n_items))
                items = D.split_items(s)
                assert [i.index for i in items if i.wrong] == sorted(s.error)


@needs_data
@pytest.mark.parametrize("L, ref_oracle, all_nonempty, all_ref, first_nonempty", [
    (256, 0.9845, 0.4784, 0.4710, 0.3474), (512, 0.9965, 0.3570, 0.3558, 0.2433)])
def test_model_free_predictors_golden(released, L, ref_oracle, all_nonempty, all_ref, first_nonempty):
    samples = released[L]
    base = baseline_scores(samples, 0.5, 0)
    nonempty = [i for i, s in enumerate(samples) if not s.empty]
    assert all(base["oracle"]["fixed"][i] == 1.0 for i in nonempty)
    assert statistics.fmean(base["oracle"]["reference"]) == pytest.approx(ref_oracle, abs=1e-4)
    assert statistics.fmean(base["all_indices"]["fixed"][i] for i in nonempty) == pytest.approx(all_nonempty, abs=1e-4)
    assert statistics.fmean(base["all_indices"]["reference"]) == pytest.approx(all_ref, abs=1e-4)
    assert statistics.fmean(base["first_only"]["fixed"][i] for i in nonempty) == pytest.approx(first_nonempty, abs=1e-4)
    empty = score_rows(samples, {s.id: "[]" for s in samples})
    assert all(r["f1_reference"] == 0 for r in empty) and all(r["f1_fixed"] in (0.0, None) for r in empty)
    rnd = [v for v in base["random"]["fixed"] if v is not None]
    exp = [v for v in base["random_expected"]["fixed"] if v is not None]
    se = statistics.pstdev(rnd) / len(rnd) ** 0.5
    assert abs(statistics.fmean(rnd) - statistics.fmean(exp)) < 4 * se


@needs_data
def test_stratified_subset(released):
    samples = released[256]
    a = D.stratified(samples, 200, seed=1)
    assert a == D.stratified(samples, 200, seed=1) and len(a) == 200 and len({s.id for s in a}) == 200
    share = sum(s.category == "Translation" for s in a) / 200
    assert abs(share - sum(s.category == "Translation" for s in samples) / len(samples)) < 0.01


@needs_data
def test_limt_from_released_items(released):
    pool = D.item_pool(released[256] + released[512])
    count = WordCounter()
    out = D.synthesize_limt(pool, 1024, 5, count.count, seed=0)
    assert out == D.synthesize_limt(pool, 1024, 5, count.count, seed=0)
    for s in out:
        assert 0.75 * 1024 <= count.count(s.data) <= 1024 and s.error
        assert len(set(s.meta["tasks"])) == s.n_items  # one item per task: mixed tasks
        assert D.item_headers(s.data, "LIMT") == list(range(s.n_items))


# -- synthetic samples (no data needed) ------------------------------------------------------------
def _gist(key: str, items: list[tuple[str, str, bool]]) -> D.ExamSample:
    data = "".join(f"[{i}:{x} Answer: {a}]\n\n" for i, (x, a, _) in enumerate(items))
    err = tuple(i for i, it in enumerate(items) if it[2])
    ok = tuple(i for i, it in enumerate(items) if not it[2])
    return D.ExamSample(key, "GIST", 256, f"Instruction of {key}.", data, err, ok, ("Cat",))


SAMPLES = [_gist(f"task{k}", [(f"question {k}.{i} what is {i}+{k}?", str(i + k + (i == 1)), i == 1)
                              for i in range(4)]) for k in range(12)]


def test_items_listify_and_oracle():
    s = SAMPLES[0]
    items = D.split_items(s)
    assert [it.answer for it in items] == ["0", "2", "2", "3"] and items[1].wrong
    ls = D.listify(s)
    assert D.item_headers(ls.data, "LIST") == [0, 1, 2, 3] and ls.error == (1,) and ls.synthetic
    assert ls.data.count("Instruction:Instruction of task0.") == 4
    rows = score_rows(SAMPLES, {x.id: S.oracle_response(x.error, x.n_items) for x in SAMPLES})
    assert all(r["f1_reference"] == 1.0 and r["f1_fixed"] == 1.0 for r in rows)


def test_limt_synthesis_bounds():
    pool = D.item_pool(SAMPLES)
    count = WordCounter().count
    for s in D.synthesize_limt(pool, 60, 6, count, seed=2):
        assert count(s.data) <= 60 and s.error and s.bucket == "LIMTsyn-60"
        gold = {i for i, line in enumerate(s.data.strip().split("\n\n")) if "+" in line and
                int(line.rsplit("Output: ", 1)[1].rstrip("]")) != eval(line.split("what is ")[1].split("?")[0])}
        assert gold == set(s.error)


def test_prompts():
    norm = build_prompt("GIST", "TASK", "[0:x Answer: y]")
    assert norm.splitlines() == [GIST_INSTRUCTION_0, "TASK", norm.splitlines()[2], "[0:x Answer: y]", GIST_INSTRUCTION_2]
    faithful = build_prompt("GIST", "TASK", "DATA", "faithful")
    assert faithful.count("\n" + " " * 36) == 4 and "\n" + " " * 24 + "DATA" in build_prompt("LIST", "", "DATA", "faithful")
    assert norm.endswith("Answer:")
    with pytest.raises(ConfigError):
        build_prompt("XYZ", "", "")


def test_window_policy():
    model = FakeModel.from_function(lambda *a: "[1]")
    s = _gist("long", [(" ".join(["word"] * 40), "a", i == 2) for i in range(6)])
    count = WordCounter()
    budget_words = 200
    fits = _fit(Config(max_new_tokens=10), model, count, s, 10_000)
    assert fits["status"] == "fits"
    skipped = _fit(Config(max_new_tokens=10, truncation="skip"), model, count, s, budget_words)
    assert skipped["status"] == "skipped" and skipped["prompt"] is None
    cut = _fit(Config(max_new_tokens=10, truncation="middle"), model, count, s, budget_words)
    assert cut["status"] == "truncated" and cut["truncated_tokens"] <= budget_words - 10
    assert count.count(model.render(cut["prompt"])) <= budget_words - 10
    with pytest.raises(ConfigError):
        _fit(Config(max_new_tokens=10, truncation="error"), model, count, s, budget_words)


@needs_data
def test_end_to_end_with_a_scripted_model(tmp_path):
    from solstice.core.runner import run_paper

    res = run_paper("longins", scale="smoke", models=["fake:const=[0]"], out=tmp_path, limit=4)
    assert res.status == "completed", res.error
    m = res.metrics
    assert m["n_fits/GIST-256"].value + m["n_empty/GIST-256"].value == 4
    assert m["parse_fail/GIST-256"].value == 0.0
    assert m["f1_fixed/GIST-256"].value == pytest.approx(m["first_only_fixed/GIST-256"].value)
    assert (Path(res.path) / "artifacts" / "categories.csv").is_file()


@needs_data
def test_synthetic_settings_and_truncation_end_to_end(tmp_path):
    from solstice.core.runner import run_paper

    sets = ["settings=[LIMT]", "lengths=[256, 1024]", "limt_samples=3", "n_per_bucket=3",
            "context_window=700", "truncation=middle", "max_new_tokens=4"]
    res = run_paper("longins", scale="smoke", models=["fake:const=[0]"], out=tmp_path, sets=sets)
    assert res.status == "completed", res.error
    m = res.metrics
    assert {"f1/LIMTsyn-256", "f1_fixed/LIMTsyn-1024", "random_expected_fixed/LIMTsyn-1024"} <= set(m)
    assert m["n_truncated/LIMTsyn-1024"].value == 3 and m["n_fits/LIMTsyn-256"].value == 3
    meta = __import__("json").loads((res.path / "run.json").read_text())
    assert any("LIMT was never released" in w for w in meta["warnings"])
    assert meta["longins_fit"]["LIMTsyn-1024"] == {"truncated": 3}
    assert any(w.startswith("LIMTsyn-1024: 3 of 3 prompts exceed the 700-token window") for w in meta["warnings"])
    with pytest.raises(DataError, match="GIST_1024"):  # LISTsyn-1024 is built from GIST-1024
        run_paper("longins", scale="smoke", out=tmp_path, sets=["settings=[LIST]", "lengths=[1024]"])
    res = run_paper("longins", scale="smoke", models=["fake:const=[]"], out=tmp_path,
                    sets=["settings=[LIST]", "lengths=[256]", "max_new_tokens=4"], limit=3)
    assert res.status == "completed" and res.metrics["f1/LISTsyn-256"].value == 0


