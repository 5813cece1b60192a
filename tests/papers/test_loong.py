"""Loong: loader golden counts, document store, prompt construction and budgeting, the judge prompt,
the rating parser, aggregation, and the scripted exact judge end to end. Model quality plays no part."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from conftest import needs_data, shared_data
from solstice.errors import DataError
from solstice.judge import Judge
from solstice.models.tokens import WordCounter
from solstice.papers.loong import data as D
from solstice.papers.loong import prompts as P
from solstice.papers.loong import scoring as S
from solstice.papers.loong.run import exact_judge_model, oracle_text, per_level
from solstice.papers.loong.synthetic import write_collection

count = WordCounter().count


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("loong-synth")
    items = D.load_items(write_collection(root, seed=0))
    return items, D.DocStore(root / "doc"), root


def docs_of(store, item, mode="fixed"):
    return [store.load(item, k, i, faithful_labels=mode == "faithful") for i, k in enumerate(item.doc)]


@pytest.fixture(scope="module")
def release():
    return D.load_items(shared_data() / "loong" / "loong.jsonl")


@needs_data
def test_release_counts(release):
    assert len(release) == 1600
    assert Counter(i.type for i in release) == {"financial": 700, "legal": 500, "paper": 400}
    assert Counter(i.level for i in release) == {1: 250, 2: 300, 3: 641, 4: 409}
    assert Counter(i.set for i in release) == {1: 323, 2: 564, 3: 481, 4: 232}
    assert sorted(Counter(i.prompt_template for i in release).values()) == [130, 270, 1200]
    assert sum(not i.shuffle_doc for i in release) == 505
    assert sum(P.omits_results(i, "fixed") for i in release) == 113
    assert sum(P.omits_results(i, "faithful") for i in release) == 0  # the reference's leak
    assert sum(i.type == "legal" and i.level == 4 for i in release) == 179


@needs_data
def test_release_without_documents_is_a_clear_error(release, tmp_path):
    store = D.DocStore(tmp_path)
    with pytest.raises(DataError, match="documents are missing"):
        D.check_docs(store, release[:5], allow_missing=False)
    assert len(D.check_docs(store, release[:5], allow_missing=True)) == len({(i.type, k) for i in release[:5] for k in i.doc})


def test_synthetic_collection_shape(synth):
    items, store, _ = synth
    assert {i.level for i in items} == {1, 2, 3, 4} and {i.type for i in items} == set(D.TYPES)
    assert not store.missing(items)
    shapes = Counter((i.type, type(i.answer).__name__) for i in items)
    assert shapes[("paper", "list")] == 4 and shapes[("paper", "dict")] == 4 and shapes[("legal", "dict")] > 0
    assert sum(P.omits_results(i, "fixed") for i in items) == 3


def test_rendering(synth):
    items, store, _ = synth
    legal = next(i for i in items if i.type == "legal" and P.omits_results(i, "fixed"))
    fixed = P.build_prompt(legal, docs_of(store, legal), count, 10**6)
    leaky = P.build_prompt(legal, docs_of(store, legal), count, 10**6, mode="faithful")
    shown, leaked = fixed.text.split(legal.instruction)[0], leaky.text.split(legal.instruction)[0]
    for k, key in enumerate(legal.doc):
        assert f"《判决文书{k + 1}》\n" in shown
        assert store.legal[key]["result"] not in shown and store.legal[key]["result"] in leaked
    fin = next(i for i in items if i.type == "financial" and i.level == 1)
    assert all(f"《{k}》\n" in P.build_prompt(fin, docs_of(store, fin), count, 10**6).text for k in fin.doc)
    assert "《j》\n" in P.build_prompt(fin, docs_of(store, fin, "faithful"), count, 10**6, mode="faithful").text
    paper = next(i for i in items if i.type == "paper" and i.level == 3)
    text = P.build_prompt(paper, docs_of(store, paper), count, 10**6).text
    title = store.load(paper, paper.doc[0], 0).label
    assert f"{title}\n# {title}\n" in text and text.startswith("#Papers:\n")
    assert '{"Reference"' in text and '{{"Reference"' in P.fill_template(paper, "faithful")


def test_financial_file_rule(tmp_path):
    d = tmp_path / "financial"
    d.mkdir()
    for name in ("2024-ACME CORP-j.txt", "2024-ACME CORP-n.txt", "2023-acme_10k.txt", "2024-acme_10k.txt"):
        (d / name).write_text("report")
    store = D.DocStore(tmp_path)
    assert store.financial_file("ACME CORP", 1) == "2024-ACME CORP-j.txt" and "ACME CORP" in store.ambiguous
    assert store.financial_file("2023-acme_10k", 4) == "2023-acme_10k.txt"
    assert store.financial_file("OTHER [X]", 2) is None  # glob characters are literal


def test_packing_skips_whole_documents_and_is_deterministic():
    kept, skipped = P.pack([5, 50, 3, 40, 2], 12)
    assert kept == [0, 2, 4] and skipped == [1, 3]
    rng = random.Random(0)
    for _ in range(200):
        toks = [rng.randrange(1, 60) for _ in range(rng.randrange(1, 12))]
        budget = rng.randrange(0, 200)
        order = rng.sample(range(len(toks)), len(toks))
        kept, skipped = P.pack(toks, budget, order)
        assert sum(toks[i] for i in kept) <= budget and sorted(kept + skipped) == sorted(order)
        assert all(sum(toks[i] for i in kept) + toks[j] > budget for j in skipped if j not in kept) or not skipped


def test_budgeted_prompts_fit_and_repeat(synth):
    items, store, _ = synth
    rng = random.Random(1)
    for item in items:
        docs = docs_of(store, item)
        for _ in range(3):
            budget = rng.randrange(0, 400)
            a = P.build_prompt(item, docs, count, budget, seed=7)
            assert a.doc_tokens <= budget and sorted(a.kept + a.skipped) == sorted(item.doc)
            assert a == P.build_prompt(item, docs, count, budget, seed=7)
        full = P.build_prompt(item, docs, count, 10**6, seed=7)
        other = P.build_prompt(item, docs, count, 10**6, seed=8)
        assert sorted(full.kept) == sorted(other.kept) == sorted(item.doc)
        if not item.shuffle_doc:
            assert full.kept == list(item.doc)


def test_judge_prompt_and_rule_based_judge(synth):
    items, _, _ = synth
    paper = next(i for i in items if i.type == "paper")
    assert "{docs}" in P.judge_question(paper, "faithful") and "{docs}" not in P.judge_question(paper, "fixed")
    text = P.judge_prompt(paper, "my answer")
    assert P.split_judge_prompt(text) == (D.answer_text(paper.answer), "my answer")
    assert text.endswith("Now, start your evaluation:") and "[Gold Answer]" in text
    judge = Judge(exact_judge_model(), lambda it: [{"role": "user", "content": it["prompt"]}],
                  lambda t: S.parse_rating(t))
    oracle = judge.judge([{"prompt": P.judge_prompt(i, oracle_text(i.answer))} for i in items])
    empty = judge.judge([{"prompt": P.judge_prompt(i, "")} for i in items])
    assert all(v.parsed and v.value == 100 for v in oracle)
    assert all(v.parsed and v.value == 0 for v in empty)
    assert S.answers_match({"a": ["x", "y"]}, '{"A": ["y", "x"]}') and not S.answers_match(["x", "y"], '["y", "x"]')


@pytest.mark.parametrize("text, value", [
    ("Rating: [[87]]", 87.0), ("[[100]]", 100.0), ("Rating: [[87.5]]", 87.5), ("no rating here", None),
    ("Rating: [[-5]]", None), ("Rating: [[101]]", None), ("See [3] and [[4]]. Rating: [[90]]", 90.0),
    ("The answer cites [3].\nRating: [[60]]", 60.0),
])
def test_rating_parser_table(text, value):
    v = S.parse_rating(text)
    assert v.value == value and v.parsed == (value is not None)


def test_rating_parser_variants():
    assert S.parse_rating("Rating: [[101]]", out_of_range="clip").value == 100.0
    assert S.out_of_range("Rating: [[101]]", S.parse_rating("Rating: [[101]]"))
    assert S.parse_rating("explained [3] then Rating: [[70]]", "reference").value == 70.0
    assert S.parse_rating("explained [3] only", "reference").value == 3.0  # the permissive fallback


def test_aggregation_hand_table():
    rows = [{"level": 1, "set": 1, "type": "financial", "score": 100.0},
            {"level": 1, "set": 1, "type": "legal", "score": 50.0},
            {"level": 1, "set": 2, "type": "legal", "score": None},
            {"level": 3, "set": 2, "type": "paper", "score": 0.0}]
    agg = S.aggregate(rows)
    assert agg["spotlight"] == {"n": 3, "parsed": 2, "success": pytest.approx(2 / 3), "avg": 75.0, "perfect": 0.5}
    assert agg["set2"]["n"] == 2 and agg["set2"]["parsed"] == 1 and agg["set2"]["success"] == 0.5
    assert agg["overall"]["avg"] == pytest.approx(50.0) and agg["overall"]["n"] == 4
    m = S.cell_metrics(rows)
    assert m["avg_score/spotlight"].value == 75.0 and m["perfect_rate/spotlight"].value == 0.5
    assert m["scoring_success"].value == 0.75


def test_per_level_selection(synth):
    items, _, _ = synth
    one = per_level(items, 1)
    assert [i.level for i in one] == [1, 2, 3, 4] and len({i.type for i in one}) == 3


def test_end_to_end_with_the_exact_judge(tmp_path):
    from solstice.core.runner import run_paper

    res = run_paper("loong", scale="smoke", models=["target=fake:const=I do not know."], out=tmp_path,
                    sets=["n_per_level=null", "judge_mode=exact", "judge_probes=[oracle, empty]"])
    assert res.status == "completed", res.error
    m = res.metrics
    assert m["oracle/avg_score"].value == 100 and m["oracle/perfect_rate"].value == 1.0
    assert m["empty/avg_score"].value == 0 and m["avg_score"].value == 0 and m["scoring_success"].value == 1.0
    assert m["avg_score"].n == 34 and m["docs_kept"].value == 1.0
    meta = json.loads((res.path / "run.json").read_text())
    assert meta["token_counting"]["counter"].startswith("model:") and meta["loong"]["collection"] == "synthetic"


def test_release_layout_from_a_user_folder(tmp_path, monkeypatch):
    from solstice.core.runner import run_paper

    write_collection(tmp_path / "mine", seed=3)
    monkeypatch.setenv("SOLSTICE_DATA", str(tmp_path))
    sets = ["collection=release", "questions=mine/loong.jsonl", "judge_mode=exact", "judge_probes=[oracle]",
            "n_per_level=1", "levels=[1, 4]", "mode=faithful"]
    res = run_paper("loong", scale="smoke", models=["target=fake:const=x"], out=tmp_path / "runs", sets=sets)
    assert res.status == "completed", res.error
    meta = json.loads((res.path / "run.json").read_text())
    assert meta["loong"]["docs"]["files"] > 20 and meta["loong"]["mode"] == "faithful"
    assert res.metrics["oracle/avg_score"].value == 100 and res.metrics["avg_score"].n == 2
    with pytest.raises(DataError, match="doc.zip"):
        run_paper("loong", scale="smoke", out=tmp_path / "runs", sets=[*sets, "doc_dir=absent"])


def test_prefill_judge_reads_the_number(synth):
    from solstice.models.fake import FakeModel
    from solstice.papers.loong.config import Config
    from solstice.papers.loong.run import make_judge

    seen = []

    def reply(text, i, p):
        seen.append(text)
        return "87]] and more text" if "Cobalt" in text else "oops"

    items, _, _ = synth
    judge = make_judge(Config(judge_mode="prefill"), FakeModel.from_function(reply))
    v = judge.judge([{"prompt": P.judge_prompt(items[0], "x")}, {"prompt": "no company"}])
    assert [x.value for x in v] == [87.0, None] and "assistant: Rating: [[" in seen[0]


def test_judging_existing_predictions(tmp_path, synth):
    from solstice.core.runner import run_paper

    items, _, _ = synth  # seed 0: the same collection as the run's
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": i.id, "generate_response": oracle_text(i.answer)}) + "\n" for i in items))
    sets = ["n_per_level=null", "judge_mode=exact", "judge_probes=[]", f"predictions_from={preds}"]
    res = run_paper("loong", scale="smoke", models=["target=fake:const=never used"], out=tmp_path, sets=sets)
    assert res.status == "completed", res.error
    assert res.metrics["avg_score"].value == 100 and res.metrics["exact_match"].value == 1.0
    preds.write_text(preds.read_text().splitlines()[0] + "\n")
    res = run_paper("loong", scale="smoke", models=["target=fake:const=x"], out=tmp_path, sets=sets)
    assert res.status == "failed" and "no answer for 33" in res.error and res.exit_code == 2


def test_a_target_without_a_judge_gets_the_labelled_rule_based_judge_and_window_cuts_warn(tmp_path):
    """Setting only target= must not leave the ratings to the 135M default judge (which never gives a
    parsable rating): the rule-based judge is used, labelled and warned about. Documents left out
    because the window is below max_length are a warning in run.json, not only a counter."""
    from solstice.core.runner import run_paper

    res = run_paper("loong", scale="smoke", models=["target=fake:const=I do not know."], out=tmp_path,
                    sets=["context_window=160", "max_new_tokens=16"])
    assert res.status == "completed", res.error
    meta = json.loads((res.path / "run.json").read_text())
    assert res.metrics["judge_rule_based"].value == 1.0 and res.metrics["scoring_success"].value == 1.0
    assert meta["loong_judge"]["fallback"] is True
    assert any("RULE-BASED" in w for w in meta["warnings"])
    assert any("left whole documents out" in w for w in meta["warnings"])
    assert res.metrics["items_with_skipped_docs"].value > 0
    same = run_paper("loong", scale="smoke", models=["fake:const=I do not know."], out=tmp_path)
    assert same.metrics["judge_rule_based"].value == 0.0  # one model for both roles: the model judges


def test_rescore_rejudges_recorded_answers_without_regenerating(tmp_path):
    from solstice.core.rescore import rescore
    from solstice.core.runner import run_paper

    sets = ["n_per_level=null", "judge_probes=[]"]
    first = run_paper("loong", scale="smoke", models=["target=fake:const=x", "judge=fake:const=Rating: [[80]]"],
                      out=tmp_path, sets=sets)
    assert first.status == "completed", first.error
    assert first.metrics["avg_score"].value == 80
    same = rescore(first.path, ["judge=fake:const=Rating: [[80]]"], out=tmp_path / "re")
    assert {k: v.to_json() for k, v in same.metrics.items()} == {k: v.to_json() for k, v in first.metrics.items()}
    other = rescore(first.path, ["judge=fake:const=Rating: [[20]]"], out=tmp_path / "re")
    assert other.metrics["avg_score"].value == 20
    lineage = json.loads((other.path / "run.json").read_text())["lineage"]["rescored_from"]
    n = first.metrics["avg_score"].n
    assert lineage["records_kept"] == n and lineage["records_recomputed"] == n  # answers kept, verdicts redone
