"""DPA-RAG: scorer parity with the released rows, the reranker's losses and MGDA weights against
references, a separable pair set, seeded mining and training, the augmentation leak check, the
rerank stage, and the run through the CLI."""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_env, needs_data
from solstice.errors import DataError
from solstice.models.fake import FakeModel
from solstice.papers.dpa_rag import augment as A
from solstice.papers.dpa_rag import data as D
from solstice.papers.dpa_rag import evaluate as E
from solstice.papers.dpa_rag import mining as M
from solstice.papers.dpa_rag.prompts import OPERATORS, clean_rewrite, reader_prompt
from solstice.retrieval.preferences import Preference as P
from solstice.retrieval.preferences import preference_records

torch = pytest.importorskip("torch")
from solstice.training import reranker as rr  # noqa: E402


# ------------------------------------------------------------------------- released rows (harness)
@needs_data
def test_scorer_reproduces_released_em_f1_and_categories():
    from solstice.data.sources import resolve
    from solstice.papers.dpa_rag.harness import scorer_parity

    rows = [r for s in ("valid", "test") for r in D.load_examples(resolve(D.EXAMPLES[s], download=False), s)]
    p = scorer_parity(rows)
    assert (p["answers"], p["em_match"], p["f1_match"]) == (80, 80, 80), p["mismatches"]
    assert (p["rows"], p["category_match"]) == (40, 40), p["mismatches"]
    # the check can fail: flipping one released category is caught
    bad = [dict(r) for r in rows]
    bad[0]["category"] = 3 - bad[0]["category"]
    assert scorer_parity(bad)["category_match"] == 39
    for r in D.load_examples(resolve(D.EXAMPLES["train"], download=False), "train"):
        A.validate_record(r)


# ------------------------------------------------------------------------------ losses vs references
def test_ranknet_equals_bruteforce_on_the_papers_four_document_lists():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(5, 4, generator=g)
    ref = np.mean([sum(-math.log(1 / (1 + math.exp(-(float(row[i]) - float(row[j])))))
                       for i, j in itertools.combinations(range(4), 2)) / 6 for row in s])
    assert float(rr.ranknet_loss(s)) == pytest.approx(ref, rel=1e-6)
    # a list in the right order costs less than the same list reversed
    good = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert float(rr.ranknet_loss(good)) < float(rr.ranknet_loss(good.flip(1)))


def test_supcon_equals_bruteforce_on_two_positives_two_negatives():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 4, 8, generator=g)
    labels = torch.tensor([[1, 1, 0, 0]] * 3)
    tau = 0.07
    vals = []
    for b in range(3):
        zn = [v / np.linalg.norm(v) for v in z[b].numpy().astype(np.float64)]
        for i in range(4):
            pos = [p for p in range(4) if p != i and labels[b, p] == labels[b, i]]
            den = sum(math.exp(zn[i] @ zn[a] / tau) for a in range(4) if a != i)
            vals.append(-np.mean([math.log(math.exp(zn[i] @ zn[p] / tau) / den) for p in pos]))
    assert float(rr.supcon_loss(z, labels, tau)) == pytest.approx(float(np.mean(vals)), rel=1e-5)


def test_mgda_weights_on_the_simplex_and_two_task_closed_form():
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = rng.normal(size=(2, 6))
        m = g @ g.T
        w = rr.min_norm_weights(m)
        g1, g2 = g
        gamma = float(np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1))
        assert w == pytest.approx([gamma, 1 - gamma], abs=1e-9)
        g3 = rng.normal(size=(3, 6))
        w3 = rr.min_norm_weights(g3 @ g3.T)
        assert min(w3) >= 0 and sum(w3) == pytest.approx(1.0)
        # no random simplex point has a smaller norm (up to Frank-Wolfe's tolerance)
        best = float(np.asarray(w3) @ (g3 @ g3.T) @ np.asarray(w3))
        for a in rng.dirichlet(np.ones(3), size=50):
            assert best <= float(a @ (g3 @ g3.T) @ a) + 1e-3


# ------------------------------------------------------------------------ training on separable pairs
def _separable(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "tiger", "piano", "maple", "ocean"]
    out = []
    for _ in range(n):
        key, other = rng.sample(words, 2)
        docs = [f"yes {key}", f"no {other}", f"yes, {key}", f"no, {other}"]
        out += preference_records(key, docs, [P.ALIGNED, P.UNALIGNED, P.ALIGNED, P.UNALIGNED],
                                  seed=rng.randrange(1 << 30))
    return out


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory):
    from solstice.models.tiny import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("ce"), seed=0)


def test_reranker_reaches_full_accuracy_on_a_separable_set_and_reranks(tiny_ce):
    from solstice.papers.dpa_rag.pipeline import rerank_documents, rerank_then_read

    cfg = rr.RerankerConfig(epochs=4, lr=3e-3, batch_size=8, max_length=32, seed=0, weighting="mgda")
    res = rr.train_reranker(_separable(12, 0), rr.load_reranker(tiny_ce, max_length=32), cfg)
    rep = rr.classification_report(res.model, _separable(8, 1))
    assert rep["accuracy"] >= 0.95, rep
    top = rerank_documents("piano", ["no cloud", "no, maple", "yes piano"], res.model, top_k=1)
    assert top[0][0] == 2
    seen = []
    reader = FakeModel.from_function(lambda text, i, p: seen.append(text) or "piano")
    assert rerank_then_read(reader, "piano", ["no cloud", "no, maple", "yes piano"], res.model, top_k=1) == "piano"
    assert "yes piano" in seen[0] and "no cloud" not in seen[0]


def test_fixed_seeds_give_identical_weights_and_labels(tiny_ce):
    cfg = rr.RerankerConfig(epochs=1, lr=1e-3, batch_size=4, max_length=32, seed=11, weighting="mgda")
    runs = []
    for _ in range(2):
        res = rr.train_reranker(_separable(4, 2), rr.load_reranker(tiny_ce, max_length=32), cfg)
        runs.append((res.history, [p.detach().clone() for p in res.model.model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    for h in runs[0][0]:
        w = [v for k, v in h.items() if k.startswith("weight_")]
        assert min(w) >= 0 and sum(w) == pytest.approx(1.0)
    # mining is deterministic too: same reader, same labels (and the rule follows the script)
    reader = _doc_reader()
    docs = ["Paris is the capital of France.", "Lyon is a city.", "Berlin is in Germany."]
    a = M.mine_logprob(M.scoring_model(reader), "capital of France?", ["Paris"], docs, tau=1.0)
    b = M.mine_logprob(M.scoring_model(reader), "capital of France?", ["Paris"], docs, tau=1.0)
    assert a == b and a["labels"][0] == int(P.ALIGNED) and a["labels"][1] != int(P.ALIGNED)


def _doc_reader():
    """Answers with the first capitalised word of the document, or 'unknown' closed-book."""
    def fn(text, i, p):
        if "Document:" not in text:
            return "unknown"
        doc = text.split("Document:", 1)[1]
        return next((w.strip(".,") for w in doc.split() if w[:1].isupper()), "unknown")
    return FakeModel.from_function(fn)


def test_generation_rule_and_has_answer_labels():
    docs = ["Paris is the capital of France.", "Lyon is a city.", "Berlin is in Germany."]
    g = M.mine_generate(_doc_reader(), "capital of France?", ["Paris"], docs, 8)
    assert g["before"] == "unknown" and g["labels"] == [int(P.ALIGNED), int(P.BOTH_INCORRECT), int(P.BOTH_INCORRECT)]
    assert M.mine_has_answer(["Paris"], docs) == [int(P.ALIGNED), int(P.UNALIGNED), int(P.UNALIGNED)]


def test_ranking_metrics_with_oracle_and_worst_orders():
    labels = [int(P.UNALIGNED), int(P.BOTH_CORRECT), int(P.ALIGNED)]
    assert E.hit_at([2, 0, 1], labels, 1) == 1.0 and E.hit_at([0, 1, 2], labels, 1) == 0.0
    assert E.hit_at([0, 1, 2], labels, 3) == 1.0
    assert E.mrr([0, 1, 2], labels) == pytest.approx(1 / 3)
    assert E.ndcg([2, 1, 0], labels, 3) == pytest.approx(1.0)
    assert E.ndcg([0, 1, 2], labels, 3) < 1.0
    assert E.order_from_scores([0.1, 0.5, 0.5]) == [1, 2, 0]


# --------------------------------------------------------------------------------------- augmentation
def test_augmentation_schema_filter_and_no_test_question_leaks():
    test_q = "who wrote the republic"
    answers = {"rephrasing": "Who was the author of Hamlet?", "complexity": test_q.upper() + "?",
               "decomposition": "", "constraint": "Which play did Shakespeare write first?",
               "sparql": "SELECT ?a WHERE { wd:Q41567 wdt:P50 ?a }"}

    def fn(text, i, p):
        op = next(o for o, instr in OPERATORS.items() if instr in text)
        return answers[op]
    rw = A.rewrite_queries(FakeModel.from_function(fn), ["who wrote hamlet"])
    assert [x["operator"] for x in rw[0]] == list(OPERATORS)
    rec = preference_records("who wrote hamlet", ["Shakespeare wrote Hamlet.", "Hamlet is a prince.",
                                                  "Marlowe wrote plays.", "Hamlet was written in 1600."],
                             [P.ALIGNED, P.UNALIGNED, P.BOTH_INCORRECT, P.ALIGNED], seed=0)
    kept = {"who wrote hamlet": [x["rewrite"] for x in rw[0] if x["rewrite"]]}
    aug = A.augmented_records(rec, kept)
    assert len(aug) == len(rec) * 4
    for r in rec + aug:
        A.validate_record(r)
    # the rewrite that equals a held-out question is found, and training refuses it
    assert A.leaked_queries(rec + aug, [test_q]) == [test_q.upper() + "?"]
    with pytest.raises(DataError, match="held-out"):
        A.check_no_leak(rec + aug, [test_q])
    clean = [r for r in aug if D.question_key(r["query"]) != D.question_key(test_q)]
    A.check_no_leak(rec + clean, [test_q])
    with pytest.raises(DataError):
        A.validate_record({**rec[0], "extra": 1})
    assert clean_rewrite("Rewritten question: \"Who penned Hamlet?\"\nmore", "rephrasing") == "Who penned Hamlet?"
    assert clean_rewrite("SELECT ?a\nWHERE { x }", "sparql") == "SELECT ?a WHERE { x }"


def test_minilm_filter_keeps_paraphrases_and_drops_unrelated():
    keep, cos = A.minilm_keep(["who wrote hamlet"] * 3,
                              ["who is the author of hamlet", "what is the boiling point of mercury", ""], 0.6)
    assert keep == [True, False, False] and cos[0] > cos[1]


def test_split_is_seeded_disjoint_and_prompts_share_the_question_prefix():
    qs = [D.Question(f"q{i}", f"question {i % 90}", ("a",), "g0") for i in range(100)]
    tr, te = D.split(qs, 0.2, 0)
    assert (tr, te) == D.split(qs, 0.2, 0) and len(tr) + len(te) == 100
    assert not {D.question_key(q.text) for q in tr} & {D.question_key(q.text) for q in te}
    closed, with_doc = reader_prompt("q?")[0]["content"], reader_prompt("q?", ["d"])[0]["content"]
    assert closed.startswith("Question: q?\n\n") and with_doc.startswith("Question: q?\n\n")


# ------------------------------------------------------------------------------- end to end, the CLI
@needs_data
def test_run_through_the_cli_with_scripted_models(tmp_path, tiny_ce):
    p = subprocess.run(
        [sys.executable, "-m", "solstice", "run", "dpa_rag", "--scale", "smoke", "--out", str(tmp_path),
         "--model", "reader=fake:const=Paris", "--model", "generator=fake:echo",
         "--set", "scorer=has_answer", "--set", f"reranker_init={tiny_ce}", "--set", "max_length=32"],
        capture_output=True, text=True, env=cli_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    run = next(Path(tmp_path).glob("dpa_rag/*"))
    metrics = json.loads((run / "metrics.json").read_text())
    m = metrics.get("metrics", metrics)
    for key in ("released_em_match", "released_category_match", "hit1_reranked_minus_retriever",
                "reader_hits_reranked_minus_retriever", "leaked_test_questions"):
        assert key in m, key
    assert m["released_em_match"]["value"] == 1.0 and m["leaked_test_questions"]["value"] == 0.0
    # the constant reader never answers anything but "Paris": its accuracy is the same for every order
    assert m["reader_hits_reranked_minus_retriever"]["value"] == 0.0
    for line in (run / "artifacts" / "train_records.jsonl").read_text().splitlines():
        A.validate_record(json.loads(line))
    assert (run / "artifacts" / "reranker_reader" / "config.json").is_file()
    # a resumed run computes nothing again and gives the same metrics
    r2 = subprocess.run([sys.executable, "-m", "solstice", "run", "dpa_rag", "--resume", str(run)],
                        capture_output=True, text=True, env=cli_env(), timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    again = json.loads((run / "metrics.json").read_text())
    assert again == metrics


@needs_data
@pytest.mark.slow
def test_smoke_with_the_default_model(tmp_path):
    p = subprocess.run([sys.executable, "-m", "solstice", "run", "dpa_rag", "--scale", "smoke", "--out",
                        str(tmp_path)], capture_output=True, text=True, env=cli_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]


def test_nli_filter_drops_exactly_the_contradicted_rewrites(tmp_path):
    import transformers as tf

    from solstice.errors import ConfigError
    from solstice.models.tiny import build_tiny_cross_encoder

    # a random 3-way classifier with NLI label names (the tiny cross-encoder's tokenizer and body)
    d = build_tiny_cross_encoder(tmp_path / "ce", seed=1)
    net = tf.AutoModelForSequenceClassification.from_pretrained(d, num_labels=3, ignore_mismatched_sizes=True)
    net.config.id2label = {0: "entailment", 1: "neutral", 2: "contradiction"}
    net.config.label2id = {v: k for k, v in net.config.id2label.items()}
    net.save_pretrained(tmp_path / "nli")
    tf.AutoTokenizer.from_pretrained(d).save_pretrained(tmp_path / "nli")
    orig = ["who wrote hamlet"] * 6
    rw = ["who penned hamlet", "what is hamlet", "x", "who wrote macbeth", "hamlet author?", ""]
    keep, labels = A.nli_keep(orig, rw, str(tmp_path / "nli"), batch_size=4)
    assert len(labels) == 6 and set(labels) <= {"entailment", "neutral", "contradiction"}
    assert keep == [bool(r) and lab != "contradiction" for r, lab in zip(rw, labels)]
    with pytest.raises(ConfigError, match="contradiction"):
        A.nli_keep(orig[:1], rw[:1], str(d))  # a one-logit model is not an NLI model
    with pytest.raises(ConfigError, match="minilm"):
        A.nli_keep(orig[:1], rw[:1], str(tmp_path / "missing"))


@pytest.mark.slow
@pytest.mark.parametrize("weighting", ["sum", "mgda"])
def test_minilm_init_learns_the_separable_set_with_either_weighting(weighting):
    """On the real MiniLM init the equal-weight sum does not collapse (unlike the tiny random
    cross-encoder of the layer tests): both weightings separate held-out pairs."""
    from solstice.retrieval.encoders import embedded_minilm_dir

    torch.manual_seed(0)
    model = rr.load_reranker(embedded_minilm_dir(), max_length=32)
    cfg = rr.RerankerConfig(epochs=3, lr=1e-4, batch_size=8, max_length=32, seed=0, weighting=weighting)
    res = rr.train_reranker(_separable(12, 0), model, cfg)
    assert rr.classification_report(res.model, _separable(8, 1))["accuracy"] >= 0.95

