"""Base vs Instruct RAG: golden counts from the NQ test file, degenerate readers, prompt assembly,
the chat-template condition against apply_chat_template, extraction cases, metric arithmetic,
top-k files, and the one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, needs_data, shared_data
from solstice.errors import ConfigError, DataError
from solstice.metrics.answers import (
    exact_match,
    normalize,
    substring_match,
    token_contains,
    usable_answers,
)
from solstice.papers.base_vs_instruct_rag import prompts as P
from solstice.papers.base_vs_instruct_rag.config import Config
from solstice.papers.base_vs_instruct_rag.extract import extract, is_rejection
from solstice.retrieval.documents import Corpus, Document
from solstice.retrieval.passages import (
    dedup_documents,
    load_topk,
    order_for_prompt,
    render_numbered,
)


@pytest.fixture(scope="module")
def nq():
    from solstice.papers.base_vs_instruct_rag.data import load_questions

    root = shared_data()
    return load_questions(root / "nq-open/nq_open_test_dataset.json", root / "nq-open/nq-open-oracle.jsonl.gz")


# -- golden counts from the data ---------------------------------------------------------------
@needs_data
def test_gold_answer_in_gold_passage_counts(nq):
    from solstice.papers.base_vs_instruct_rag.harness import data_facts

    m = data_facts(nq)
    assert len(nq) == 2889 and len({q.gold_id for q in nq}) == 2841 and sum(bool(q.title) for q in nq) == 2605
    got = {k: round(v.value * v.n) for k, v in m.items() if k != "data_empty_gold_answers"}
    assert got == {"data_gold_in_passage": 2819, "data_gold_in_passage_punct_delete": 2775,
                   "data_gold_in_passage_token": 2817, "data_gold_in_passage_raw": 2694}
    assert m["data_empty_gold_answers"].value == 1  # the answer "*"
    # any Unicode normal form gives the same count
    for form in ("NFC", "NFKC", None):
        assert sum(substring_match(q.gold_text, q.answers, unicode_form=form) for q in nq) == 2819


@needs_data
def test_degenerate_readers_give_the_spec_numbers(nq):
    from solstice.papers.base_vs_instruct_rag.harness import degenerate_readers

    m = {k: round(v.value * v.n) for k, v in degenerate_readers(nq).items()}
    assert m["gold_oracle_substring"] == 2819 and m["gold_oracle_negative_rejection"] == 70
    assert m["gold_oracle_parametric_recall"] == 0
    assert (m["gold_nores_substring_unguarded"], m["gold_nores_substring"], m["gold_nores_token_contains"]) == (2, 1, 0)
    assert m["gold_nores_negative_rejection"] == 70
    assert (m["gold_echo_substring_unguarded"], m["gold_echo_substring"]) == (58, 57)


# -- normaliser and matching -------------------------------------------------------------------
def test_matching_variants():
    assert normalize("The U.S.-led  Coalition!") == "u s led coalition"
    assert normalize("The U.S.-led Coalition!", punctuation="delete") == "usled coalition"
    assert substring_match("in 1972", ["1"]) and not token_contains("in 1972", ["1"])
    assert substring_match("anything", ["*"], guard_empty=False) and not substring_match("anything", ["*"])
    assert usable_answers(["the", "*", "Paris"]) == ["Paris"]
    assert exact_match("The Beatles", ["beatles"]) and not exact_match("The Beatles band", ["beatles"])
    assert substring_match("Zu\u0308rich", ["Zürich"])  # NFD on both sides


# -- prompt assembly ---------------------------------------------------------------------------
def _docs():
    return [Document("11", "best text", "Best"), Document("22", "second text", "Second"),
            Document("33", "best text", "Best"), Document("44", "third text", "")]


def test_documents_reversed_deduplicated_and_numbered():
    kept, dropped = dedup_documents(_docs())
    assert [d.id for d in kept] == ["11", "22", "44"] and dropped == 1  # later copy of (title, text) dropped
    text = render_numbered(order_for_prompt(kept, reverse=True))
    assert text.split("\n") == ["Document [44](Title: ) third text", "Document [22](Title: Second) second text",
                                "Document [11](Title: Best) best text"]  # best last
    assert render_numbered(order_for_prompt(kept, reverse=False)).startswith("Document [11]")


def test_instruction_variants_differ_only_in_their_sentences():
    full = P.instruction("task1")
    assert full == P.EXTRACT.format(cap=P.CAP) + P.REJECT
    assert P.instruction("task1", rejection=False) == full.replace(P.REJECT, "")
    assert P.instruction("task1", token_cap=False) == full.replace(P.CAP, "")
    proof = P.instruction("proof")
    assert proof.startswith(full + P.PROOF) and "START example" in proof and proof.count("Answer:") == 1
    assert "internal knowledge" in P.instruction("query_only")
    b = P.body("task1", "who?", "Document [1](Title: T) x")
    assert P.plain_prompt(full, b) == f"{full}\nDocuments:\nDocument [1](Title: T) x\nQuestion: who?\nAnswer:"
    assert P.body("query_only", "who?", "ignored") == "Question: who?\nAnswer:"


def test_build_prompt_conditions():
    from solstice.papers.base_vs_instruct_rag.data import Question
    from solstice.papers.base_vs_instruct_rag.run import build_prompt

    q = Question("1", "who wrote it", ("Ann",), "11", "best text", "Best")
    cfg = Config()
    plain, match_text, ids, dropped = build_prompt(cfg, "task1", "instruct_plain", q, _docs(), True)
    assert isinstance(plain, str) and ids == ["44", "22", "11"] and dropped == 1 and "Best best text" in match_text
    base, *_ = build_prompt(cfg, "task1", "base", q, _docs(), True)
    assert base == plain  # conditions (1) and (2) read the same string
    msgs, *_ = build_prompt(cfg, "task1", "instruct_template", q, _docs(), True)
    assert msgs[0] == {"role": "system", "content": P.instruction("task1")}
    assert plain == P.plain_prompt(msgs[0]["content"], msgs[1]["content"])
    merged, *_ = build_prompt(cfg, "task1", "instruct_template", q, _docs(), False)
    assert merged == [{"role": "user", "content": plain}]
    qo, mt, ids, _ = build_prompt(cfg, "query_only", "instruct_plain", q, _docs(), True)
    assert "Documents:" not in qo and mt is None and ids == []


# -- condition (3) equals apply_chat_template --------------------------------------------------
MISTRAL_LIKE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
                "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                "{% elif m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}"
                "{{ m['content'] + eos_token }}{% endif %}{% endfor %}")


def test_template_condition_equals_apply_chat_template(tiny_llama):
    from solstice.models.hf import HFModel
    from solstice.models.tiny import tiny_tokenizer
    from solstice.papers.base_vs_instruct_rag.data import Question
    from solstice.papers.base_vs_instruct_rag.run import _rendered, build_prompt, system_slot

    q = Question("1", "who wrote it", ("Ann",), "11", "best text", "Best")
    cfg = Config()
    # a template with a system role: the instruction goes to the system message
    assert system_slot(cfg, tiny_llama) is True
    msgs, *_ = build_prompt(cfg, "task1", "instruct_template", q, _docs(), True)
    want = tiny_llama.tokenizer.apply_chat_template(
        [{"role": "system", "content": P.instruction("task1")}, {"role": "user", "content": msgs[1]["content"]}],
        tokenize=False, add_generation_prompt=True)
    assert _rendered(tiny_llama, msgs) == (want, True)
    # a template without a system role (Mistral): merged into the user turn
    tok = tiny_tokenizer()
    tok.chat_template = MISTRAL_LIKE
    mistral = HFModel(tiny_llama.spec, model=tiny_llama.model, tokenizer=tok)
    assert system_slot(cfg, mistral) is False
    assert system_slot(cfg.model_copy(update={"system_slot": "system"}), mistral) is True
    merged, *_ = build_prompt(cfg, "task1", "instruct_template", q, _docs(), False)
    plain, *_ = build_prompt(cfg, "task1", "instruct_plain", q, _docs(), False)
    rendered, _ = _rendered(mistral, merged)
    assert rendered == tok.apply_chat_template([{"role": "user", "content": plain}], tokenize=False)
    assert rendered == f"{tok.bos_token}[INST] {plain} [/INST]"


# -- extraction --------------------------------------------------------------------------------
EX = P.PROOF_EXAMPLE.strip("\n")


@pytest.mark.parametrize("raw, answer, proof, truncated", [
    (" Paris", "Paris", P.NO_PROOF, False),
    ("\n\nParis\nQuestion: next one", "Paris", P.NO_PROOF, True),
    ("Answer: Paris", "Paris", P.NO_PROOF, False),
    ("Question: who wrote it\nAnswer: Ann Smith\nQuestion: again", "Ann Smith", P.NO_PROOF, True),
    ("Document [3](Title: X) text\nQuestion: q\nAnswer: first\nQuestion: q2\nAnswer: second", "second",
     P.NO_PROOF, False),
    (f"{EX}\nParis\nProof: The capital is Paris .", "Paris", "The capital is Paris .", True),
    (f"\n{EX}", "", P.NO_PROOF, False),
    ("Paris Proof: Paris is the capital", "Paris", "Paris is the capital", True),
    ("Answer: 4th Dynasty\nParis\nProof: x", "Paris", "x", True),  # an echoed example answer line is dropped
    ("NO-RES", "NO-RES", P.NO_PROOF, False),
    ("", "", P.NO_PROOF, False),
])
def test_extraction_table(raw, answer, proof, truncated):
    ex = extract(raw)
    assert (ex.answer, ex.proof, ex.truncated) == (answer, proof, truncated)


def test_rejection_detection():
    assert is_rejection("NO-RES") and is_rejection("no-res.") and not is_rejection("Norway")


# -- metric arithmetic on a hand table ---------------------------------------------------------
def _row(substring, nores, in_docs, words=1):
    return {"substring": substring, "substring_unguarded": substring, "exact": substring, "token_contains": substring,
            "nores": nores, "ans_in_docs": in_docs, "answer_words": words, "truncated": False}


def test_rejection_and_parametric_recall_denominators():
    from solstice.papers.base_vs_instruct_rag.run import condition_metrics, paired_metrics

    rows = [_row(True, False, True), _row(False, True, True), _row(False, True, False), _row(True, False, False),
            _row(False, False, False)]
    m = condition_metrics("t", rows, "task1")
    assert m["t_accuracy"].value == pytest.approx(2 / 5) and m["t_accuracy"].n == 5
    assert m["t_negative_rejection"].value == pytest.approx(1 / 3) and m["t_negative_rejection"].n == 3
    assert m["t_parametric_recall"].value == pytest.approx(1 / 3) and m["t_parametric_recall"].n == 3
    assert m["t_nores_rate"].value == pytest.approx(2 / 5)
    a = {str(i): r for i, r in enumerate(rows)}
    b = {str(i): {**r, "substring": True} for i, r in enumerate(rows)}
    p = paired_metrics("t", {"base": b, "instruct_plain": a})
    assert p["t_paired_base_minus_instruct_plain"].value == pytest.approx(3 / 5)
    assert p["t_paired_base_minus_instruct_plain"].unit == "items"
    assert p["t_mcnemar_p_base_vs_instruct_plain"].value == pytest.approx(0.25)  # 3 discordant, one way


# -- retrieval inputs --------------------------------------------------------------------------
def test_topk_file_roundtrip_and_errors(tmp_path):
    corpus = Corpus([Document("7", "seven", "T7"), Document("9", "nine", "T9")], name="c")
    f = tmp_path / "topk.jsonl"
    f.write_text(json.dumps({"example_id": 1, "ctxs": [{"id": 9, "score": 2.0}, 7]}) + "\n"
                 + json.dumps({"question": "q?", "ctxs": [{"id": "x", "title": "X", "text": "inline"}]}) + "\n")
    got = load_topk(f, corpus)
    assert [r.doc.text for r in got["1"]] == ["nine", "seven"] and got["1"][0].score == 2.0 and got["1"][1].score is None
    assert got["q?"][0].doc.title == "X"
    assert [r.doc.id for r in load_topk(f, corpus, k=1)["1"]] == ["9"]
    f.write_text(json.dumps({"id": "a", "ctxs": [99]}) + "\n")
    with pytest.raises(DataError, match="line 1: document id '99' is not in corpus 'c'"):
        load_topk(f, corpus)


def test_bm25_passage_retrieval_finds_the_gold():
    from solstice.retrieval.passages import passage_index, search_passages

    corpus = Corpus([Document("1", "The Eiffel Tower is in Paris.", "Eiffel Tower"),
                     Document("2", "Bananas are yellow fruit.", "Banana"),
                     Document("3", "Mount Everest is the highest mountain.", "Everest")])
    hits = search_passages(passage_index(corpus), corpus, ["highest mountain", "where is the eiffel tower"], k=2)
    assert hits[0][0].doc.id == "3" and hits[1][0].doc.id == "1" and hits[0][0].rank == 0


# -- refusals ----------------------------------------------------------------------------------
def test_check_models_names_the_flag():
    from solstice.papers.base_vs_instruct_rag.run import check_models

    with pytest.raises(ConfigError, match="--model base="):
        check_models(Config(), {"base": "default", "instruct": "default"})
    with pytest.raises(ConfigError, match="--model base="):
        check_models(Config(), {"base": "default", "instruct": "hf:some/instruct"})
    with pytest.raises(ConfigError, match="--model base="):
        check_models(Config(), {"base": "hf:x", "instruct": "hf:x"})
    check_models(Config(), {"base": "hf:b", "instruct": "hf:i"})
    check_models(Config(conditions=["instruct_plain", "instruct_template"]), {"base": "default", "instruct": "default"})
    with pytest.raises(ConfigError, match="mode=completions"):
        check_models(Config(conditions=["instruct_plain"]), {"base": "x", "instruct": "openai:m@http://h/v1"})
    check_models(Config(conditions=["instruct_plain"]), {"base": "x", "instruct": "openai:m@http://h/v1?mode=completions"})


@needs_data
def test_missing_base_model_is_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "solstice", "run", "base_vs_instruct_rag", "--scale", "smoke",
                        "--set", "conditions=[base,instruct_plain]", "--model", "instruct=fake:const=NO-RES",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=cli_env(), timeout=120)
    err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--model base=" in err[-1]


# -- end to end with a scripted reader ---------------------------------------------------------
@needs_data
def test_end_to_end_with_scripted_readers(tmp_path):
    from solstice.core.runner import run_paper

    res = run_paper("base_vs_instruct_rag", scale="smoke", out=tmp_path,
                    models=["instruct=fake:const=NO-RES", "base=fake:echo"],
                    sets=["conditions=[base,instruct_plain,instruct_template]", "questions=5"])
    assert res.status == "completed", res.error
    m = res.metrics
    assert m["task1_instruct_plain_nores_rate"].value == 1.0
    assert m["task1_instruct_plain_negative_rejection"].n == round((1 - m["task1_ans_in_docs"].value) * 5)
    assert m["task1_oracle_substring"].value == m["task1_ans_in_docs"].value
    assert "task1_paired_base_minus_instruct_template" in m
    rows = [json.loads(x) for x in (Path(res.path) / "samples.jsonl").read_text().splitlines()]
    t = [r for r in rows if r["condition"] == "instruct_template" and r["task"] == "task1"]
    assert t and all(r["prompt"].startswith("system: " + P.instruction("task1")) for r in t)
    assert all(r["prompt"].endswith("Answer:") for r in rows if r["condition"] != "instruct_template")
    assert all(r["raw"] == "NO-RES" for r in rows if r["condition"] != "base")


def test_answer_absent_share_removes_every_answer_passage():
    from solstice.papers.base_vs_instruct_rag.run import absent_pick, without_answer
    from solstice.retrieval.passages import Retrieved

    cfg = Config(answer_absent=0.3)
    picked = [absent_pick(str(i), cfg) for i in range(2000)]
    assert 0.25 < sum(picked) / 2000 < 0.35 and picked == [absent_pick(str(i), cfg) for i in range(2000)]
    assert not any(absent_pick(str(i), Config()) for i in range(100))
    ranked = [Retrieved(Document(str(i), t, ""), 1.0, i) for i, t in
              enumerate(["Paris is big", "Lyon", "the PARIS metro", "Nice", "Lille", "Metz"])]
    kept = without_answer(ranked, ["Paris"], 3)
    assert [r.doc.id for r in kept] == ["1", "3", "4"]
