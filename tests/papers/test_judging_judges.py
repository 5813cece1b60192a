"""Judging the Judges: loader facts, golden agreement values of the released verdicts, library
parity, exam prompts, question selection, truncation, the synthetic exam, and end-to-end runs with
an oracle and a constant judge (model-independent)."""

import json
import re

import numpy as np
import pytest

from conftest import needs_data, shared_data
from solstice.judge.lexical import contains, exact_match
from solstice.papers.judging_judges.exam import (
    KINDS,
    build_exam,
    exam_prompt,
    fewshot_indices,
    parse_fewshot,
    select_questions,
    truncate_answer,
)

# (n, PA, Cohen's kappa, Scott's pi, Krippendorff's alpha, Spearman rho, Kendall tau, max |dev| points, P_+)
# computed from the released v1 verdicts (every judge on its own labelled rows); see the paper README.
GOLDEN = {
    "Mistral-7B": (3595, 0.8940, 0.7361, 0.7352, 0.7352, 0.9167, 0.7778, 12.25, 0.8723),
    "Llama-7B": (3595, 0.8612, 0.6564, 0.6555, 0.6556, 0.5833, 0.5000, 21.00, 0.8219),
    "Llama-13B": (3595, 0.7750, 0.5442, 0.5285, 0.5286, 0.8167, 0.7222, 32.75, 0.1994),
    "Llama3-8B": (3595, 0.8509, 0.6418, 0.6416, 0.6417, 0.7667, 0.5556, 18.50, 0.7395),
    "Gemma-2B": (3595, 0.7803, 0.4220, 0.4132, 0.4133, 0.1172, 0.1409, 43.80, 0.8694),
    "Llama-70B": (3465, 0.8987, 0.7403, 0.7376, 0.7377, 0.8167, 0.7222, 23.50, 0.9714),
    "EM": (3595, 0.7088, 0.4578, 0.4113, 0.4114, 0.7833, 0.6111, 56.25, 0.0000),
    "Llama3-70B": (3595, 0.9266, 0.8179, 0.8174, 0.8174, 0.9333, 0.8333, 12.00, 0.9180),
    "GPT-4": (3595, 0.9115, 0.7876, 0.7875, 0.7875, 1.0000, 1.0000, 4.00, 0.7643),
    "JudgeLM": (3595, 0.8017, 0.5917, 0.5805, 0.5806, 0.9833, 0.9444, 24.00, 0.1927),
    "Contains": (3595, 0.8478, 0.6832, 0.6759, 0.6760, 0.9833, 0.9444, 21.25, 0.0371),
}


@pytest.fixture(scope="module")
def v1():
    from solstice.papers.judging_judges.data import load_release

    return load_release(shared_data() / "judges-triviaqa/TriviaQA_Judges_w_HumanJudgement_V1.csv", "v1")


@pytest.fixture(scope="module")
def analysed(v1):
    from solstice.papers.judging_judges.analysis import analyze_release

    return analyze_release(v1, n_resamples=100)


@needs_data
def test_release_loader_facts(v1):
    from solstice.papers.judging_judges.data import scorable

    assert len(v1.rows) == 3600 and len(v1.questions) == 400 and len(v1.takers) == 9
    assert {r["benchmark"] for r in v1.rows} == {"triviaQA-400-v1.5.0"}
    blanks = {j: sum(r[j] is None for r in v1.rows) for j in v1.judges}
    assert blanks.pop("Llama-70B") == 135 and set(blanks.values()) == {5}
    human = v1.labels("HumanJudgement")
    assert human.count(True) == 2507 and human.count(False) == 1093
    per_taker = {t: {r["question"] for r in v1.rows if r["model"] == t} for t in v1.takers}
    assert len(per_taker.pop("llama2-7b-chat")) == 395
    assert len({frozenset(s) for s in per_taker.values()}) == 1  # the other 8 share one question set
    malformed = [r["row"] for r in v1.rows if all(r[j] is None for j in v1.judges)]
    assert malformed == [1600, 1601, 1602, 1603, 1604] and len(scorable(v1)) == 3595
    assert all(r["response"].rstrip().endswith("A:") for r in v1.rows)  # prompts, not answers
    refs = [len(r["references"].split("\n")) for r in v1.rows]
    assert min(refs) == 2 and max(refs) == 10


@needs_data
def test_golden_agreement_values(analysed):
    for j, (n, pa, k, pi, a, rho, tau, dev, pplus) in GOLDEN.items():
        d = analysed["judges"][j]
        v, r = d["agreement"]["values"], d["ranking"]["values"]
        assert d["agreement"]["n"] == n
        got = (v["pa"], v["kappa"], v["pi"], v["alpha"], r["spearman"], r["kendall"], v["p_plus"])
        assert got == pytest.approx((pa, k, pi, a, rho, tau, pplus), abs=6e-5), j
        assert r["max_abs_dev"] == pytest.approx(dev, abs=6e-3), j
        lo, hi = d["agreement"]["ci95"]["kappa"]
        assert lo < k < hi
    assert analysed["n_common"] == 3465
    assert analysed["human_scores"]["gpt-4t"] == pytest.approx(91.25)


@needs_data
def test_statistics_equal_the_libraries_on_every_judge(v1):
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    from solstice.metrics.agreement import confusion_matrix, table_stats

    h = v1.labels("HumanJudgement")
    for j in v1.judges:
        pairs = [(a, b) for a, b in zip(v1.labels(j), h) if a is not None]
        a = np.array([p[0] for p in pairs], dtype=int)
        b = np.array([p[1] for p in pairs], dtype=int)
        st = table_stats(confusion_matrix(list(a), list(b)))
        assert float(st["kappa"]) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
        table, _ = aggregate_raters(np.stack([a, b], axis=1), n_cat=2)
        assert float(st["pi"]) == pytest.approx(fleiss_kappa(table), abs=1e-12)


@needs_data
def test_paper_findings_hold_qualitatively(analysed):
    from solstice.papers.judging_judges.analysis import release_metrics

    m = release_metrics(analysed)
    kappa = {j: m[f"kappa_{j}"].value for j in GOLDEN}
    assert sorted(kappa, key=kappa.get)[-2:] == ["GPT-4", "Llama3-70B"]  # best aligned
    assert m["pa_hides_gap"].value >= 20  # Llama-2-70B: PA 0.90 but 23.5 points off on one exam-taker
    for j in ("JudgeLM", "Contains"):  # rank much better than their kappa suggests
        assert m[f"rank_rho_{j}"].value > 0.98 and kappa[j] < 0.7
    assert m["p_plus_EM"].value == 0 and m["fpr_EM"].value == 0  # exact match is never lenient


@needs_data
def test_exam_prompts_rebuild_the_released_prompts(v1):
    rows = [r for r in v1.rows if r["row"] not in range(1600, 1605)]
    fewshot = parse_fewshot(rows[0]["response"])
    assert len(fewshot) == 5 and fewshot[0][1] == "Pam Ferris"
    chat_takers = {"llama2-7b-chat", "llama2-13b-chat", "llama2-70b-chat", "mistral-7b-chat"}
    for r in rows:
        assert r["response"] == exam_prompt(r["question"], fewshot, chat=r["model"] in chat_takers), r["row"]


def test_question_selection_is_seeded_and_filters_references():
    rng = np.random.default_rng(0)
    val = [{"question": f"q{i}", "answer": {"value": f"a{i}", "aliases": [f"x{k}" for k in range(int(rng.integers(0, 14)))]}}
           for i in range(300)]
    idx = select_questions(val, 40)
    assert idx == select_questions(val, 40) and len(idx) == 40 and len(set(idx)) == 40
    assert all(1 + len(val[i]["answer"]["aliases"]) <= 10 for i in idx)
    perm = np.random.Generator(np.random.PCG64(51)).permutation(300).tolist()
    kept = [i for i in perm if 1 + len(val[i]["answer"]["aliases"]) <= 10][:40]
    assert idx == kept
    assert fewshot_indices(1000) == np.random.Generator(np.random.PCG64(51)).choice(1000, 5, replace=False).tolist()


@pytest.mark.parametrize(
    "text, preset, out",
    [
        (" Pam Ferris\n\nQ: Next question?\nA: x", "newlinequestion", "Pam Ferris"),
        ("Tokyo, Japan\nmore", "newlinequestion", "Tokyo, Japan\nmore"),
        ("Tokyo, Japan\nmore", "newline", "Tokyo, Japan"),
        ("The Beatles, of course.", "eleutherai", "beatles"),
        ("  Hess  ", "skip", "Hess"),
    ],
)
def test_truncation_presets(text, preset, out):
    assert truncate_answer(text, preset) == out


QS = [("In which London building do you find the Jerusalem Chamber?", ["Westminster Abbey", "Abbey of Westminster"]),
      ("Which cartoon character has a friend called Captain Haddock?", ["Tintin", "Tin-Tin"]),
      ("Who wrote Peter Rabbit?", ["Beatrix Potter", "Helen Beatrix Potter"]),
      ("What is the capital of France?", ["Paris"]),
      ("Which planet is known as the red planet?", ["Mars"]),
      ("Who painted the Mona Lisa?", ["Leonardo da Vinci", "Leonardo"])]


def test_synthetic_exam_labels_are_right_by_construction():
    exam = build_exam(QS, seed=3)
    assert exam == build_exam(QS, seed=3) and exam != build_exam(QS, seed=4)
    assert len(exam) == 5 * len(QS) and {it.kind for it in exam} == set(KINDS)
    for it in exam:
        refs = list(it.references)
        if it.kind == "correct":
            assert it.label and exact_match(it.response, refs)
        elif it.kind == "correct_verbose":
            assert it.label and contains(it.response, refs) and not exact_match(it.response, refs)
        elif it.kind == "incorrect":
            assert not it.label and not contains(it.response, refs)
        elif it.kind == "partial":
            assert not it.label and not exact_match(it.response, refs)
            if it.meta["subtype"] == "underspecified":
                assert refs[0].startswith(it.response) and len(it.response) < len(refs[0])
        else:
            assert not it.label and it.response in ("Yes", "Sure", it.question)
    partial = {it.question: it.response for it in exam if it.kind == "partial"}
    assert partial[QS[0][0]] == "Westminster" and partial[QS[2][0]] == "Beatrix"
    assert " or " in partial[QS[3][0]]  # single-word answers get a hedged two-entity answer


def _oracle_rules(path, exam):
    rules = [{"match": "(?s)Question:\n" + re.escape(it.question) + "\n.*Model Response:\n" + re.escape(it.response) + "\n\n",
              "reply": "correct" if it.label else "incorrect"} for it in exam]
    path.write_text(json.dumps({"rules": rules, "default": "no idea"}))


@needs_data
def test_end_to_end_oracle_and_constant_judges(tmp_path, v1):
    from solstice.core.runner import run_paper

    questions = list({r["question"]: r["references"] for r in v1.rows}.items())[:4]
    rules = tmp_path / "oracle.json"
    _oracle_rules(rules, build_exam(questions, seed=0))
    sets = ["n_resamples=50", "exam_questions=4", "probe_questions=0", "generate_items=6"]
    oracle = run_paper("judging_judges", scale="small", sets=sets, models=[f"judge=fake:{rules}"], out=tmp_path / "runs",
                       argv=["solstice", "run", "judging_judges", "--scale", "small"])
    assert oracle.status == "completed", oracle.error
    again = run_paper("judging_judges", resume=oracle.path)  # everything recorded: metrics only
    meta = json.loads((oracle.path / "run.json").read_text())
    assert again.status == "completed" and meta["scale"] == "small" and meta["argv"][-1] == "small"
    assert len(meta["plots"]) == len({p["path"] for p in meta["plots"]}) == 2
    assert again.metrics["live_kappa"].value == 1
    m = oracle.metrics
    assert m["live_kappa"].value == 1 and m["live_pa"].value == 1 and m["live_unparsed"].value == 0
    assert m["gen_unparsed"].value == 0 and m["gen_vs_logprob_agreement"].value == 1
    assert m["kappa_GPT-4"].value == pytest.approx(GOLDEN["GPT-4"][2], abs=6e-5)
    assert m["em_accept_correct"].value == 1 and m["em_accept_correct_verbose"].value == 0
    assert m["contains_accept_correct_verbose"].value == 1 and m["contains_accept_incorrect"].value == 0

    const = run_paper("judging_judges", sets=[*sets, "probe_questions=1"], models=["judge=fake:const=correct"],
                      out=tmp_path / "runs")
    m = const.metrics
    assert m["live_kappa"].value == 0 and m["live_says_correct"].value == 1 and m["live_accept_dummy"].value == 1
    assert m["live_fpr"].value == 1 and m["live_p_plus"].value == 1  # the most lenient judge possible
    assert m["reforder_flip_rate"].value == 0 and m["length_accept_incorrect_verbose"].value == 1
    claims = {c["key"]: c["status"] for c in json.loads((const.path / "run.json").read_text())["claims"]}
    assert claims["top_aligned"] == "pass" and claims["human_iaa"] == "not run"

    # another judge through `solstice rescore`: the released-verdict analysis is kept, the live judge redone
    from solstice.core.rescore import rescore

    strict = rescore(const.path, ["judge=fake:const=incorrect"], out=tmp_path / "re")
    assert strict.status == "completed", strict.error
    assert strict.metrics["live_says_correct"].value == 0 and strict.metrics["live_fpr"].value == 0
    assert strict.metrics["kappa_GPT-4"].to_json() == m["kappa_GPT-4"].to_json()
    lineage = json.loads((strict.path / "run.json").read_text())["lineage"]["rescored_from"]
    assert lineage["stages_kept"] == ["release_v1"] and lineage["records_kept"] == 0


@pytest.mark.parametrize("bad", ["judge_template=NOPE", "probe_templates=[TAG]", "release=v3", "exam_questions=0"])
def test_bad_config_is_refused_before_the_run(bad):
    from solstice.core.runner import prepare
    from solstice.errors import ConfigError

    with pytest.raises(ConfigError):
        prepare("judging_judges", sets=[bad])


def test_logprob_verdicts_use_whole_label_sequence_logprobs():
    """On a tokenized model the labels' first tokens differ ('c' vs 'i' on the byte-level tiny model):
    verdict probabilities must still be those of the whole words, i.e. equal the renormalised
    sequence log-likelihoods of "correct" and "incorrect"."""
    import math

    from solstice.judge.correctness import CorrectnessJudge
    from solstice.models.loader import load_model

    model = load_model("tiny:llama")
    judge = CorrectnessJudge(model, mode="logprobs")
    items = [{"question": "Capital of France?", "references": ["Paris"], "response": r} for r in ("Paris", "Lyon")]
    for it, v in zip(items, judge.judge(items)):
        lc, li = (r.logprob for r in model.loglikelihood([(judge.prompt(it), "correct"), (judge.prompt(it), "incorrect")]))
        want = 1 / (1 + math.exp(li - lc))
        assert v.probs["correct"] == pytest.approx(want, abs=1e-4)
        assert v.value is (lc > li)


@needs_data
def test_whole_label_logprobs_separate_oracle_from_constant_on_released_rows(v1):
    """Items from the released rows (questions, references; answers with known labels): the log-prob
    verdict path gives an oracle judge kappa 1 and AUROC 1 and a constant judge kappa 0 and AUROC 0.5."""
    from solstice.judge.correctness import CorrectnessJudge
    from solstice.models.fake import FakeModel
    from solstice.papers.judging_judges.probes import record, verdict_metrics

    questions = list({r["question"]: r["references"] for r in v1.rows}.items())[:12]
    built = build_exam(questions, seed=0)
    exam = [it.to_json() for it in built]
    rules = [(re.compile("(?s)Question:\n" + re.escape(it.question) + "\n.*Model Response:\n" + re.escape(it.response) + "\n\n"),
              it.label) for it in built]

    def oracle(text, i, p):
        return next(("correct" if lab else "incorrect" for rx, lab in rules if rx.search(text)), "no idea")

    assert len({it["label"] for it in exam}) == 2
    for name, model, kappa, auroc in (("oracle", FakeModel.from_function(oracle, "oracle"), 1.0, 1.0),
                                      ("const", FakeModel.from_function(lambda t, i, p: "correct", "const"), 0.0, 0.5)):
        judge = CorrectnessJudge(model, mode="logprobs")
        recs = [record(v) for v in judge.judge(exam)]
        m = verdict_metrics(recs, exam, "x_", n_resamples=0)
        assert m["x_kappa"].value == pytest.approx(kappa), name
        assert m["x_auroc"].value == pytest.approx(auroc), name


def test_live_table_shows_the_parsed_n_that_kappa_uses():
    """40 generated verdicts of which 4 parsed: the table row must say 4 beside kappa, not only 40."""
    from solstice.papers.judging_judges.probes import live_tables, verdict_metrics

    items = [{"label": i % 2 == 0, "kind": "correct" if i % 2 == 0 else "incorrect"} for i in range(40)]
    recs = [{"value": it["label"] if i < 4 else None, "parsed": i < 4} for i, it in enumerate(items)]
    m = verdict_metrics(recs, items, "gen_", n_resamples=0, full=False)
    assert m["gen_kappa"].n == 4
    row = next(line for line in live_tables(m, ["correct", "incorrect"]).splitlines() if "generated text" in line)
    assert row.startswith("| live judge (generated text) | 40 | 4 |")
