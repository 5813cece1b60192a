"""Context recycling: prompt assembly (each paragraph once, demos in order with their evidence ids),
demo generation and validation, the demo cache, evidence metrics, the parser, an oracle reader, the
position sweep's gold mapping, and shared-prefix reading equal to plain generation."""

from __future__ import annotations

import math
import re

import pytest

from conftest import needs_data, shared_data
from solstice.metrics.evidence import evidence_prf
from solstice.models.fake import FakeModel
from solstice.papers.context_recycling.config import Config
from solstice.papers.context_recycling.data import Item, Paragraph
from solstice.papers.context_recycling.demos import (
    DemoCache,
    candidate_order,
    content_key,
    generate_demos,
    is_leak,
)
from solstice.papers.context_recycling.prompts import (
    Demo,
    demo_ids,
    parse_demo,
    parse_output,
    reader_prompt,
)

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon"


def _paras(n=5):
    return tuple(Paragraph(f"Title {i}", f"Paragraph {i} says the capital of place{i} is City{i}. {WORDS}")
                 for i in range(1, n + 1))


def _item(n=5, gold=(2, 4)):
    return Item("q1", "Which city is the capital of place4?", ("City4",), _paras(n), gold)


# -- evidence metrics --------------------------------------------------------------------------
def test_evidence_metrics_hand_examples():
    assert evidence_prf({1, 3}, {3, 7}) == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "exact": 0.0}
    assert evidence_prf([], {3}) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "exact": 0.0}
    assert evidence_prf([3, 7, 3], [7, 3])["exact"] == 1.0
    assert math.isnan(evidence_prf([1], [])["recall"])


# -- prompt assembly ---------------------------------------------------------------------------
def test_every_paragraph_once_and_demos_in_order():
    it = _item()
    paras = it.paragraphs
    demos = [Demo("What is the capital of place3?", "City3", paras[2].key()),
             Demo("What is the capital of place1?", "City1", paras[0].key())]
    for arm in ("zero_shot", "recycled", "recycled_noev"):
        body, cue = reader_prompt(arm, paras, it.question, demos)
        assert all(body.count(p.text) == 1 for p in paras)
        assert [int(x) for x in re.findall(r"^\[(\d+)\] Title:", body, re.M)] == [1, 2, 3, 4, 5]
        assert body.rstrip().endswith(f"Question: {it.question}")
        assert cue == ("Answer:" if arm == "recycled_noev" else "Evidence:")
    body, _ = reader_prompt("recycled", paras, it.question, demos)
    i3, i1 = body.index("Question: What is the capital of place3?"), body.index("Question: What is the capital of place1?")
    assert i3 < i1 < body.index(f"Question: {it.question}")  # demos in order, before the question
    assert "Evidence: [3]\nAnswer: City3" in body and "Evidence: [1]\nAnswer: City1" in body
    for d in demos:  # each demo's answer is in its source paragraph
        assert d.answer in paras[demo_ids(paras, d)[0] - 1].text
    noev, _ = reader_prompt("recycled_noev", paras, it.question, demos)
    assert "Evidence" not in noev and "Question: What is the capital of place3?\nAnswer: City3" in noev
    zs, _ = reader_prompt("zero_shot", paras, it.question, demos)
    assert "place3?" not in zs
    import os

    shared = os.path.commonprefix([zs, body, noev])  # instruction + the whole context: read once for all arms
    assert all(p.text in shared for p in paras)
    # ICL: each foreign demo carries its own context, then the target context once
    other = tuple(Paragraph(f"Other {i}", f"Other text {i} {WORDS}") for i in range(3))
    icl, _ = reader_prompt("icl", paras, it.question, foreign=[(other, Demo("q?", "a", other[1].key()))])
    assert icl.count("Context:") == 2 and "Evidence: [2]\nAnswer: a" in icl
    assert all(icl.count(p.text) == 1 for p in paras) and icl.index(other[0].text) < icl.index(paras[0].text)


def test_demo_ids_follow_a_permutation():
    paras = _paras()
    d = Demo("q", "City2", paras[1].key())
    moved = (paras[1],) + paras[:1] + paras[2:]
    assert demo_ids(paras, d) == [2] and demo_ids(moved, d) == [1]
    assert content_key(paras) == content_key(moved) != content_key(paras[:4])


# -- parser --------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, cue, ev, answer, failed", [
    (" [2] [4]\nAnswer: City4", "Evidence:", (2, 4), "City4", False),
    (" [4]\nAnswer: City4\nQuestion: next?\nEvidence: [1]\nAnswer: x", "Evidence:", (4,), "City4", False),
    (" none\nAnswer: City4 is the capital. More text\nand more", "Evidence:", (), "City4 is the capital. More text", False),
    (" Title 4 and Title 2\nAnswer: City4", "Evidence:", (2, 4), "City4", False),  # titles instead of numbers
    (" 2, 4\nAnswer: City4", "Evidence:", (2, 4), "City4", False),  # bare numbers
    (" [9] [2]\nAnswer: City4", "Evidence:", (2,), "City4", False),  # out-of-range ids dropped
    (" City4 is the answer", "Evidence:", (), "City4 is the answer", True),  # no Answer: -> failure
    (" City4\nQuestion: another", "Answer:", (), "City4", False),
    ("", "Evidence:", (), "", True),
])
def test_parser_table(raw, cue, ev, answer, failed):
    p = parse_output(raw, cue, [p.title for p in _paras()])
    assert (p.evidence, p.answer, p.failed) == (ev, answer, failed)


def test_parse_demo():
    assert parse_demo(" What is X?\nAnswer: Y\nmore") == ("What is X?", "Y")
    assert parse_demo("Question: What is X?\n\nAnswer: Y") == ("What is X?", "Y")
    assert parse_demo(" What is X?") is None and parse_demo(" \nAnswer: Y") is None


# -- demo generation, validation, cache ----------------------------------------------------------
def _generator(replies):
    """A scripted generator: the paragraph number in the prompt picks a reply from `replies`."""
    calls = []

    def fn(text, i, params):
        n = int(re.search(r"Title: Title (\d+)", text).group(1))
        calls.append(n)
        if text.rstrip().endswith("Answer:"):
            return f" City{n}"
        return replies(n)

    return FakeModel.from_function(fn), calls


def test_generate_demos_validates_and_counts():
    paras = _paras(6)
    model, calls = _generator(lambda n: {1: f" What is the capital of place{n}?\nAnswer: City{n}",
                                         2: " What is in it?\nAnswer: Nowhere",            # not in paragraph
                                         3: " Where is City3 the capital?\nAnswer: City3",  # answer in question
                                         4: f" What is the capital of place{n}?",           # question only -> 2nd call
                                         }.get(n, " nonsense"))
    ds = generate_demos(model, paras, 3, seed=0, retries=1, temperature=0.7)
    assert len(ds.demos) <= 3 and ds.calls == len(calls)
    by_src = {p.key(): p for p in paras}
    for d in ds.demos:  # every kept demo's answer is in its source paragraph, not in its question
        assert d.answer in by_src[d.source].text and d.answer not in d.question
    kept = {by_src[d.source].title for d in ds.demos}
    assert kept <= {"Title 1", "Title 4"} and sum(ds.reasons.values()) >= 1
    assert ds.reasons.get("answer_not_in_paragraph", 0) + ds.reasons.get("answer_in_question", 0) >= 1
    again = generate_demos(_generator(lambda n: f" What is the capital of place{n}?\nAnswer: City{n}")[0], paras, 3)
    assert len(again.demos) == 3
    assert [d.source for d in again.demos] == [p.key() for p in candidate_order(paras, 0, 20)[:3]]  # seeded order


def test_short_paragraphs_are_not_used_and_order_is_content_based():
    paras = _paras(4) + (Paragraph("Short", "too short"),)
    order = candidate_order(paras, 0, 20)
    assert "Short" not in [p.title for p in order] and len(order) == 4
    assert [p.key() for p in candidate_order(tuple(reversed(paras)), 0, 20)] == [p.key() for p in order]
    assert [p.key() for p in candidate_order(paras, 1, 20)] != [p.key() for p in order] or len(order) < 3


def test_demo_cache_hit_for_two_questions_on_one_context():
    paras = _paras()
    model, calls = _generator(lambda n: f" What is the capital of place{n}?\nAnswer: City{n}")
    cache = DemoCache()
    a = cache.get(paras, lambda: generate_demos(model, paras, 2))
    n_calls = len(calls)
    b = cache.get(tuple(reversed(paras)), lambda: generate_demos(model, paras, 2))
    assert a is b and len(calls) == n_calls and (cache.hits, cache.misses) == (1, 1)


def test_leak_filter():
    d = Demo("Which city is the capital of place4?", "City4", "x")
    assert is_leak(d, "which city is the capital of place4") and not is_leak(d, "Who founded place4?")


# -- oracle reader through the real prompt and scoring -------------------------------------------
def test_oracle_reader_scores_one_everywhere():
    from solstice.papers.context_recycling.run import read_item

    it = _item()
    demos = [Demo("What is the capital of place1?", "City1", it.paragraphs[0].key())]

    def oracle(text, i, params):
        if text.rstrip().endswith("Answer:"):
            return " City4"
        return " [2] [4]\nAnswer: City4\nQuestion: junk"

    cfg = Config(chat=False, shared_prefix=False)
    other = tuple(Paragraph(f"Other {i}", f"Other text {i} {WORDS}") for i in range(3))
    row = read_item(cfg, FakeModel.from_function(oracle), it, ["zero_shot", "recycled", "recycled_noev", "icl"], demos,
                    [(other, Demo("q?", "a", other[0].key()))])
    for arm in ("zero_shot", "recycled", "icl"):
        r = row[arm]
        assert (r["accuracy"], r["em"], r["f1"], r["ev_precision"], r["ev_recall"], r["ev_f1"]) == (True, True, 1, 1, 1, 1)
        assert not r["parse_failed"]
    assert row["recycled_noev"]["em"] and row["zero_shot"]["paragraphs_once"]
    assert row["icl"]["prompt_tokens"] > row["recycled"]["prompt_tokens"] > row["zero_shot"]["prompt_tokens"]


# -- position sweep ------------------------------------------------------------------------------
@needs_data
def test_position_sweep_keeps_the_gold_mapping():
    from solstice.papers.context_recycling.data import nq_sweep_items

    groups = nq_sweep_items(shared_data() / "nq-open/nq-open-oracle.jsonl.gz", 5, 10, [1, 5, 10], seed=3)
    assert len(groups) == 5
    for g in groups:
        gold = g[0].paragraphs[0]
        distractors = [p for p in g[0].paragraphs if p != gold]
        for it, pos in zip(g, [1, 5, 10]):
            assert it.gold == (pos,) and it.paragraphs[pos - 1] == gold and len(it.paragraphs) == 10
            assert [p for p in it.paragraphs if p != gold] == distractors  # distractor order kept
            assert content_key(it.paragraphs) == content_key(g[0].paragraphs)  # one demo set for all positions
    again = nq_sweep_items(shared_data() / "nq-open/nq-open-oracle.jsonl.gz", 5, 10, [1, 5, 10], seed=3)
    assert [[i.paragraphs for i in g] for g in again] == [[i.paragraphs for i in g] for g in groups]


@needs_data
def test_hotpot_items_have_two_gold_paragraphs():
    from solstice.papers.context_recycling.data import hotpot_items

    items = hotpot_items(shared_data() / "hotpotqa/hotpotqa_dev_subsampled_500_ircot_format.jsonl")
    assert len(items) == 500 and all(len(it.gold) == 2 for it in items)
    assert sum(len(it.paragraphs) == 10 for it in items) == 489


# -- shared-prefix reading -----------------------------------------------------------------------
def test_common_prefix_generation_equals_generate(tiny_llama):
    from solstice.models.base import GenParams
    from solstice.models.prefix_generate import generate_common_prefix

    it = _item()
    demos = [Demo("What is the capital of place1?", "City1", it.paragraphs[0].key())]
    prompts = [reader_prompt(a, it.paragraphs, it.question, demos)[0] + "Evidence:" for a in ("zero_shot", "recycled")]
    params = GenParams(max_new_tokens=8)
    got, stats = generate_common_prefix(tiny_llama, prompts, params)
    want = tiny_llama.generate(prompts, params)
    assert [c[0].text for c in got] == [c[0].text for c in want]
    assert stats.shared and stats.prefix_tokens > 100 and stats.prefix_tokens + stats.tail_tokens < stats.full_tokens


def test_recycled_comparisons_use_questions_with_demos_only():
    from solstice.papers.context_recycling.run import paired

    rows = [{"n_demos": 0, "recycled": {"accuracy": 1, "f1": 1, "ev_f1": 1}, "zero_shot": {"accuracy": 0, "f1": 0, "ev_f1": 0}},
            {"n_demos": 2, "recycled": {"accuracy": 0, "f1": 0, "ev_f1": 0}, "zero_shot": {"accuracy": 1, "f1": 1, "ev_f1": 1}}]
    m = paired("hp", rows, "recycled", "zero_shot")
    assert m["hp_paired_recycled_minus_zero_shot_accuracy"].value == -1 and m["hp_paired_recycled_minus_zero_shot_accuracy"].n == 1
    none = paired("hp", [rows[0]], "recycled", "zero_shot")
    assert none["hp_paired_recycled_minus_zero_shot_accuracy"].n == 0
