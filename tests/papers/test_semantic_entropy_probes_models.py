"""Semantic entropy probes with models: hidden-state positions on a tiny random Llama, shared-
prefix sampling, SE with scripted models, question sets, and a full run on tiny:llama."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import needs_data
from solstice.data.geonames_qa import GEONAMES_TASKS, answer_f1, geonames_questions, score_answer
from solstice.errors import CapabilityError, ConfigError
from solstice.models.base import GenParams
from solstice.models.fake import FakeModel
from solstice.papers.semantic_entropy_probes import api
from solstice.papers.semantic_entropy_probes.generation import (
    GenSettings,
    answer_states,
    generate_batch,
    tbg_slt_positions,
)

# -- hidden-state positions ----------------------------------------------------------------------


def _generate_states(m, prompt, k):
    """Greedy tokens and generate(output_hidden_states=True) states of a single prompt."""
    torch = m.torch
    ids = torch.tensor([m.encode(prompt)])
    with torch.no_grad():
        res = m.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=k, do_sample=False,
                               min_new_tokens=k, output_hidden_states=True, return_dict_in_generate=True,
                               pad_token_id=m.tokenizer.pad_token_id)
    new = res.sequences[0, ids.shape[1]:].tolist()
    steps = res.hidden_states  # step 0: prompt [1, P, d] per layer; step t: input token a_t
    return new, steps


@pytest.mark.parametrize("shared", [False, True])
def test_tbg_slt_match_generate_hidden_states(tiny_llama, shared):
    m = tiny_llama
    prompts = ["Question: What is the capital of Chad?\nAnswer:", "Q: Hi?\nA:"]
    answers, ref = [], []
    for p in prompts:
        new, steps = _generate_states(m, p, 4)
        answers.append(new[:3])  # a_1..a_3; a_3's output predicted a_4
        ref.append({"tbg": np.stack([h[0, -1].numpy() for h in steps[0]]),
                    "slt": np.stack([h[0, -1].numpy() for h in steps[3]]),  # input a_3
                    "slt_early": np.stack([h[0, -1].numpy() for h in steps[2]])})  # input a_2
    if shared:
        from solstice.models.prefix_sampling import continuation_states, prefill

        cols = continuation_states(m, prefill(m, prompts), answers)
        tbg = np.stack([c[:, 0].numpy() for c in cols])
        slt = np.stack([c[:, -1].numpy() for c in cols])
    else:
        tbg, slt = answer_states(m, prompts, answers, dtype=np.float32)  # one padded batch
    _, slt_early = answer_states(m, prompts, answers, slt_offset=-1, dtype=np.float32)
    for i in range(2):
        np.testing.assert_allclose(tbg[i], ref[i]["tbg"], atol=1e-4)
        np.testing.assert_allclose(slt[i], ref[i]["slt"], atol=1e-4)
        np.testing.assert_allclose(slt_early[i], ref[i]["slt_early"], atol=1e-4)  # the reference's a_{T-1}
        assert not np.allclose(slt[i], ref[i]["slt_early"], atol=1e-3)  # SLT is a_T, not a_{T-1}


def test_positions_of_empty_answer():
    assert tbg_slt_positions(10, 3) == (9, 12)
    assert tbg_slt_positions(10, 3, -1) == (9, 11)
    assert tbg_slt_positions(10, 0) == (9, 9) and tbg_slt_positions(10, 0, -1) == (9, 9)


def test_shared_prefix_greedy_equals_generate(tiny_llama):
    from solstice.models.prefix_sampling import generate_shared_prefix

    prompts = ["Question: a?\nAnswer:", "Question: longer question here?\nAnswer:", "xy"]
    p = GenParams(max_new_tokens=6, logprobs=True)
    a = tiny_llama.generate(prompts, p)
    b = generate_shared_prefix(tiny_llama, prompts, p)
    for x, y in zip(a, b):
        assert x[0].text == y[0].text
        np.testing.assert_allclose(x[0].token_logprobs, y[0].token_logprobs, atol=1e-4)
    s = generate_shared_prefix(tiny_llama, prompts, GenParams(max_new_tokens=4, temperature=1.0, n=5, seed=3))
    assert [len(c) for c in s] == [5, 5, 5]
    again = generate_shared_prefix(tiny_llama, prompts, GenParams(max_new_tokens=4, temperature=1.0, n=5, seed=3))
    assert [[c.text for c in r] for r in s] == [[c.text for c in r] for r in again]  # seeded


# -- semantic entropy with scripted models -------------------------------------------------------


def _fake(distinct: bool):
    def fn(text, i, params):
        if params.greedy or params.temperature < 0.5 or "brainstormed" in text:
            return " Nairobi"
        return f" city{i}" if distinct else " Nairobi"
    return FakeModel.from_function(fn)


def test_semantic_entropy_of_scripted_models():
    items = [x for x in geonames_questions("capital_of") if x.metadata["country"] == "KE"]
    shots = {"capital_of": []}
    same = api.semantic_entropy(_fake(False), items, shots=shots)[0]
    assert same["se_discrete"] == 0.0 and same["n_clusters"] == 1 and same["correct"]
    assert same["se_rao"] == pytest.approx(0.0, abs=1e-12) and same["naive_entropy"] == pytest.approx(0.1)
    diff = api.semantic_entropy(_fake(True), items, shots=shots)[0]
    assert diff["se_discrete"] == pytest.approx(math.log(10)) and diff["n_clusters"] == 10
    assert 0 <= diff["p_true"] <= 1


def test_generate_batch_refuses_states_from_api_models():
    items = geonames_questions("capital_of", 2)
    with pytest.raises(CapabilityError):
        generate_batch(_fake(False), items, {}, GenSettings(n_samples=2), want_states=True, p_true=False)


def test_llm_entailment_judge_reads_label_probabilities(tiny_llama):
    from solstice.papers.semantic_entropy_probes.clustering import RELATIONS, LLMEntailmentJudge

    judge = LLMEntailmentJudge(tiny_llama)
    probs = judge.relation_probs([("q?", "Paris", "Lyon")])[0]
    assert set(probs) == set(RELATIONS) and sum(probs.values()) == pytest.approx(1.0)
    from solstice.papers.semantic_entropy_probes.clustering import cluster_answers

    ids = cluster_answers("q?", ["Paris", "Lyon", "paris"], judge)
    assert ids[0] == ids[2]


def test_nli_judge_reads_labels_from_a_local_checkpoint(tmp_path):
    tf = pytest.importorskip("transformers")
    from solstice.models.tiny import tiny_tokenizer
    from solstice.papers.semantic_entropy_probes.clustering import RELATIONS, NLIJudge

    tok = tiny_tokenizer()
    cfg = tf.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=3, pad_token_id=tok.pad_token_id,
                        id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                        label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    tf.BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    judge = NLIJudge(str(tmp_path))
    assert judge.index == {"contradiction": 0, "neutral": 1, "entailment": 2}
    assert judge.entail("q", "a", "b") in RELATIONS
    with pytest.raises(ConfigError):
        NLIJudge(str(tmp_path / "nothing"))


# -- question sets ---------------------------------------------------------------------------------


def test_geonames_sets_and_alias_scoring():
    sizes = {t: len(geonames_questions(t)) for t in GEONAMES_TASKS}
    assert sizes == {"capital_of": 246, "currency_of": 251, "continent_of": 252, "country_of_city": 500}
    assert [x.id for x in geonames_questions("capital_of", 5)] == [x.id for x in geonames_questions("capital_of", 5)]
    fr = next(x for x in geonames_questions("capital_of") if x.metadata["country"] == "FR")
    assert score_answer("Paris", fr.answers, fr.distractors) == (True, 1.0)
    assert not score_answer("Lyon", fr.answers, fr.distractors)[0]
    co = next(x for x in geonames_questions("capital_of") if x.metadata["country"] == "CO")
    assert score_answer("Bogotá", co.answers, co.distractors)[0] and score_answer("bogota", co.answers)[0]
    cl = next(x for x in geonames_questions("continent_of") if x.metadata["country"] == "CL")
    assert score_answer("South America", cl.answers, cl.distractors)[0]
    assert not score_answer("North America", cl.answers, cl.distractors)[0]  # F1 0.5, but a distractor wins
    jp = next(x for x in geonames_questions("currency_of") if x.metadata["country"] == "JP")
    assert score_answer("JPY", jp.answers, jp.distractors)[0] and score_answer("Japanese yen", jp.answers)[0]
    city = next(x for x in geonames_questions("country_of_city") if x.metadata["city"] == "London")
    assert score_answer("UK", city.answers, city.distractors)[0]
    assert not score_answer("United States", city.answers, city.distractors)[0]
    assert all("Mexico" not in x.question for x in geonames_questions("country_of_city") if "MX" in x.metadata["countries"])


def test_squad_f1_rules():
    assert answer_f1("the Denver Broncos", ["Denver Broncos"]) == 1.0
    assert answer_f1("Carolina Panthers", ["Denver Broncos"]) == 0.0
    assert answer_f1("Denver", ["Carolina", "Denver Broncos"]) == pytest.approx(2 / 3)


def test_few_shot_examples_never_among_questions():
    from solstice.papers.semantic_entropy_probes.questions import load_question_set, select

    shots, qs = select(load_question_set("continent_of"), 300, 5, 20)
    assert len(shots) == 5 and len(qs) == 247 and not {s.id for s in shots} & {q.id for q in qs}


@needs_data
def test_online_question_set_loaders():
    from solstice.papers.semantic_entropy_probes.questions import load_question_set

    nq = load_question_set("nq_open")
    assert len(nq) == 3610 and all(x.question.endswith("?") for x in nq)
    assert nq[0].answers == ("14 December 1972 UTC", "December 1972")
    sq = load_question_set("squad")
    assert len(sq) == 4961 and all(x.answers for x in sq)
    tq = load_question_set("triviaqa_400")
    assert len(tq) == 400 and all(len(x.answers) >= 1 for x in tq)


# -- a whole run on a tiny model -----------------------------------------------------------------


def test_full_run_on_tiny_model(tmp_path):
    from solstice.core.runner import run_paper

    sets = ["n_per_dataset=6", "n_samples=3", "max_new_tokens=3", "cv_folds=2", "n_bootstrap=20", "few_shot=1",
            "min_layers=2"]
    res = run_paper("semantic_entropy_probes", scale="smoke", sets=sets, models=["tiny:llama"], out=tmp_path)
    assert res.status == "completed", res.error
    m = res.metrics
    for k in ("se_discrete_auroc", "naive_entropy_auroc", "p_true_auroc", "sep_se_auroc_id_slt",
              "acc_probe_auroc_id_tbg", "sep_auroc_ood_slt", "sep_ood_win_rate_tbg", "accuracy_capital_of"):
        assert k in m
    probe = api.SemanticEntropyProbe.load(res.path / "artifacts" / "probes" / "sep_tbg")
    from solstice.models.loader import load_model

    risk = api.score_prompts(load_model("tiny:llama"), probe, ["Question: What is the capital of Chad?\nAnswer:"])
    assert risk.shape == (1,) and 0 <= risk[0] <= 1
    assert (res.path / "artifacts" / "layer_auroc.png").is_file()
    # resuming a finished run recomputes nothing but the analysis
    again = run_paper("semantic_entropy_probes", resume=res.path)
    assert again.status == "completed" and again.metrics["sep_se_auroc_id_slt"] == m["sep_se_auroc_id_slt"]


def test_bad_inputs_fail_before_work(tmp_path):
    from solstice.core.runner import run_paper

    with pytest.raises(ConfigError, match="unknown question set 'nosuchset'"):
        run_paper("semantic_entropy_probes", sets=["datasets=[nosuchset]"], models=["fake:echo"], out=tmp_path)
    res = run_paper("semantic_entropy_probes", models=["fake:echo"], out=tmp_path)
    assert res.status == "failed" and res.exit_code == 2 and "probes=false" in res.error


def test_api_model_run_without_probes(tmp_path):
    from solstice.core.runner import run_paper

    sets = ["probes=false", "n_per_dataset=5", "n_samples=4", "few_shot=0", "n_bootstrap=20"]
    res = run_paper("semantic_entropy_probes", sets=sets, models=["fake:choice=Paris|Lyon|Nairobi|Europe"],
                    out=tmp_path)
    assert res.status == "completed", res.error
    assert "se_discrete_auroc" in res.metrics and "sep_se_auroc_id_slt" not in res.metrics


def test_api_fit_save_load_and_score(tmp_path):
    """fit_sep -> save -> load -> score a new prompt in one forward pass; the scores equal the
    probe applied to states extracted separately, and abstention skips decoding."""
    from solstice.models.loader import load_model
    from solstice.papers.semantic_entropy_probes.evaluate import ProbeSettings
    from solstice.papers.semantic_entropy_probes.generation import prompt_states

    m = load_model("tiny:llama")
    items = api.question_set("capital_of", n=12)
    shots = api.shots_for(items, few_shot=1)
    gs = GenSettings(n_samples=3, max_new_tokens=3)
    p = api.fit_sep(m, items, position="tbg", settings=gs, shots=shots, probe_settings=ProbeSettings(min_layers=2))
    assert p.position == "tbg" and p.target == "se" and len(p.layers) >= 2 and p.meta["n_train"] == 12
    rng = np.random.default_rng(0)
    n_layers, d = m.model.config.num_hidden_layers + 1, m.model.config.hidden_size
    slt = api.SemanticEntropyProbe((1, 2), "slt", "se", 0.5).fit(rng.normal(size=(20, n_layers, d)), se=rng.random(20))
    probes = {"tbg": api.SemanticEntropyProbe.load(p.save(tmp_path / "sep_tbg")),
              "slt": api.SemanticEntropyProbe.load(slt.save(tmp_path / "sep_slt"))}
    new = [api.default_prompt(it, shots["capital_of"], gs) for it in api.question_set("capital_of", n=15)[12:]]
    risk = api.score_prompts(m, probes["tbg"], new)
    assert risk.shape == (3,) and np.all((risk >= 0) & (risk <= 1))
    assert np.allclose(risk, probes["tbg"].risk(prompt_states(m, new)), atol=1e-6)
    with pytest.raises(ConfigError, match="TBG probe"):
        api.score_prompts(m, probes["slt"], new)
    answers = ["Paris", " N'Djamena", ""]
    ids = [m.encode(m.render(pr) + a)[len(m.encode(m.render(pr))):] for pr, a in zip(new, answers)]
    _, slt = answer_states(m, new, ids, dtype=np.float32)
    assert np.allclose(api.score_answers(m, probes["slt"], new, answers), probes["slt"].risk(slt), atol=1e-6)
    r_all, outs = api.generate_with_risk(m, probes["tbg"], new, GenParams(max_new_tokens=2))
    assert np.allclose(r_all, risk, atol=1e-6) and all(o is not None for o in outs)
    _, none = api.generate_with_risk(m, probes["tbg"], new, GenParams(max_new_tokens=2), abstain_above=-1.0)
    assert none == [None, None, None]
