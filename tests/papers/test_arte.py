"""ARTE: IRT recovery, preference pairs, DPO's first-step loss, answer extraction, splits and
contamination, seeded reproducibility, and the endpoint-teacher error."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import cli_env, needs_data, shared_data
from solstice.papers.arte.answers import extract, is_correct, normalise
from solstice.papers.arte.drafts import label_of, parse_questions
from solstice.papers.arte.preferences import quartile_pairs, rationale_pair
from solstice.papers.arte.tasks import Item, Task, build_task, contaminated, norm_input, split


# -- pairs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_quartile_pairs_never_pair_equal_scores(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=20) / 4  # many ties, as with few preference items
    pairs = quartile_pairs(scores, 25, seed)
    assert pairs and len(set(pairs)) == len(pairs)
    assert all(scores[a] > scores[b] for a, b in pairs)
    q = 20 // 4
    order = np.argsort(-scores, kind="stable")
    assert {a for a, _ in pairs} <= set(order[:q]) and {b for _, b in pairs} <= set(order[::-1][:q])
    assert quartile_pairs([0.5] * 8, 5, seed) == []


def test_rationale_pairs_break_ties_by_length_then_seed():
    rats = [{"score": 0.5, "rationale": "x" * 10}, {"score": 0.5, "rationale": "x" * 50},
            {"score": 0.1, "rationale": "x" * 30}, {"score": 0.1, "rationale": "x" * 31}]
    assert rationale_pair(rats, median_len=48, seed=0) == (1, 3)
    assert rationale_pair(rats, median_len=12, seed=0) == (0, 2)
    assert rationale_pair([{"score": 0.2, "rationale": "a"}] * 3, 1, 0) is None


# -- answers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("step 1 ... <ans>(B)</ans>", "B"),
    ("so <ans> True </ans>.", "true"),
    ("I think the answer is Yes.", "yes"),
    ("Reasoning...\nthe answer is:  (C) ", "C"),
    ("no tags at all\nFalse", "false"),
    ("<ans>valid", "valid"),
    ("", ""),
    ("<ans>No</ans> but later the answer is Yes", "no"),
])
def test_answer_extraction(text, want):
    assert extract(text) == want


def test_is_correct_and_label_mapping():
    assert is_correct("... <ans>(A)</ans>", "(A)") and not is_correct("", "(A)")
    assert normalise("  Yes. ") == "yes"
    assert label_of("yes", ["no", "yes"]) == "yes" and label_of("True", ["False", "True"]) == "True"
    assert label_of("maybe", ["no", "yes"]) is None


def test_question_parsing_drops_malformed_items():
    cont = ("not True and False</input><target>False</target></Question_4>\n<Question_5><input>True or "
            "False</input><target>True</target></Question_5><Question_6><input>broken")
    assert parse_questions(cont) == [("not True and False", "False"), ("True or False", "True")]
    assert parse_questions("no tags here") == []


# -- splits and contamination -------------------------------------------------------------------------
def test_val_and_test_are_disjoint_by_normalised_input():
    items = [Item(f"Q {i % 30}" + (" " if i % 2 else ""), "yes") for i in range(60)]  # duplicates by norm
    val, test = split(items, 10, 20, seed=0)
    assert not {norm_input(i.input) for i in val} & {norm_input(i.input) for i in test}
    assert split(items, 10, 20, seed=0) == (val, test)
    with pytest.raises(Exception, match="distinct inputs"):
        split(items, 10, 25, seed=0)


def test_thirteen_gram_contamination_check():
    test = ["the quick brown fox jumps over the lazy dog near the river bank today at noon"]
    near = "Q: The quick brown fox jumps over the lazy dog near the river bank today at noon!"
    short = "the quick brown fox jumps over the lazy dog near the river"  # 12 words only
    assert contaminated([near, short, "unrelated text"], test) == [True, False, False]


@needs_data
def test_bbh_tasks_split_disjoint_with_closed_labels():
    root = shared_data() / "bbh"
    t = build_task("sports_understanding", root, n_val=100, n_test=145, n_seeds=3, seed=0)
    assert len(t.val) == 100 and len(t.test) == 145 and t.labels == ["no", "yes"]
    assert not {norm_input(i.input) for i in t.val} & {norm_input(i.input) for i in t.test}
    assert contaminated([i.input for i in t.val], [i.input for i in t.test]) == [False] * 100
    assert 0.4 < t.majority()[1] < 0.7


# -- model-based: DPO at step 0, seeded reproducibility ------------------------------------------------
def test_dpo_first_step_loss_is_ln2_with_lora_at_zero(tiny_llama, tmp_path):
    from solstice.papers.arte.align import dpo_align

    pairs = [{"prompt": f"Question {i}: is it true?\nAnswer:", "chosen": " yes, it is", "rejected": " no"}
             for i in range(4)]
    pm, hist = dpo_align(tiny_llama.model, tiny_llama.tokenizer, pairs, out_dir=tmp_path, lr=1e-3, beta=0.1,
                         epochs=1, batch_size=2, r=4, alpha=8, seed=0, max_length=64)
    losses = [h["loss"] for h in hist if "loss" in h]
    assert len(losses) == 2 and losses[0] == pytest.approx(math.log(2), abs=1e-4)
    assert losses[1] != pytest.approx(math.log(2), abs=1e-6)  # the second step sees the updated policy
    assert not any("lora" in n for n, _ in tiny_llama.model.named_parameters())  # the original is untouched


def _toy_task() -> Task:
    val = [Item(f"True and {'not ' * (i % 3)}False", "False" if i % 2 else "True") for i in range(8)]
    return Task("boolean_expressions", "Evaluate a Boolean expression.", ["False", "True"], val,
                val[:4], val[:3])


def test_fixed_seeds_reproduce_drafts_scores_and_pairs(tiny_llama):
    from solstice.papers.arte.drafts import draft_questions, draft_rationales
    from solstice.papers.arte.preferences import draft_scores

    task = _toy_task()
    a = draft_questions(tiny_llama, task, 2, seed=5, max_calls=1, max_tokens=12)
    b = draft_questions(tiny_llama, task, 2, seed=5, max_calls=1, max_tokens=12)
    assert a == b
    r1 = draft_rationales(tiny_llama, task, "True or False", 2, 8)
    assert r1 == draft_rationales(tiny_llama, task, "True or False", 2, 8)
    s1 = draft_scores(tiny_llama, task, task.val[:4], "True or False", "<ans>True</ans>")
    assert s1 == draft_scores(tiny_llama, task, task.val[:4], "True or False", "<ans>True</ans>")
    assert set(s1) <= {0, 1} and len(s1) == 4
    scores = [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4]
    assert quartile_pairs(scores, 3, 7) == quartile_pairs(scores, 3, 7)


def test_endpoint_teacher_cannot_be_aligned(tmp_path):
    r = subprocess.run([sys.executable, "-m", "solstice", "run", "arte", "--model", "teacher=fake:const=hi",
                        "--out", str(tmp_path)], env=cli_env(SOLSTICE_DATA=str(shared_data() or tmp_path)),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "local (hf:) teacher" in r.stderr or "bbh" in r.stderr.lower()
