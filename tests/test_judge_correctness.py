"""Correctness judges: the paper's verdict parser, lexical baselines, templates, log-prob and text
verdicts through any model, the cache, the staged evaluator, and shared-prefix scoring."""

import json

import pytest

from solstice.judge.correctness import (
    CorrectnessJudge,
    StagedJudge,
    format_references,
    label_prefixes,
    parse_correctness,
    tally,
)
from solstice.judge.lexical import LexicalJudge, contains, contains_words, exact_match
from solstice.judge.templates import GUIDELINE_LENGTH_ORDER, MAIN_TEMPLATE, TEMPLATES
from solstice.models import load_model
from solstice.models.fake import FakeModel


@pytest.mark.parametrize(
    "text, tag, value, parsed, confident",
    [
        ("Correct", None, True, True, True),
        (" correct.", None, True, True, True),
        ("Incorrect", None, False, True, True),
        ("incorrect, because ...", None, False, True, True),
        ("maybe correct", None, True, True, False),
        ("Maybe incorrect", None, False, True, False),
        ("**Correct**", None, True, True, True),
        ("<evaluation>correct</evaluation>", "evaluation", True, True, True),
        ("The answer names the abbey. <evaluation> Incorrect </evaluation>", "evaluation", False, True, True),
        ("no tag, but correct", "evaluation", None, False, False),
        ("", None, None, False, False),
        ("I think it is right", None, None, False, False),
        ("correctness is hard to judge", None, None, False, False),
        ("1. Underspecified answer:", None, None, False, False),
    ],
)
def test_verdict_parser_table(text, tag, value, parsed, confident):
    v = parse_correctness(text, tag=tag)
    assert (v.value, v.parsed, v.confident) == (value, parsed, confident)
    assert v.raw == text


@pytest.mark.parametrize(
    "answer, refs, em, cont, words",
    [
        ("Westminster Abbey", ["Westminster Abbey", "Abbey of Westminster"], True, True, True),
        ("westminster abbey", "Westminster Abbey\nAbbey of Westminster", True, True, True),
        ("It is Westminster Abbey.", ["Westminster Abbey"], False, True, False),  # "Abbey." is not "Abbey"
        ("Abbey, Westminster", ["Westminster Abbey"], False, False, False),
        ("the Abbey at Westminster", ["Westminster Abbey"], False, False, True),
        ("Westminster", ["Westminster Abbey"], False, False, False),
        ("Paris", [], False, False, False),
    ],
)
def test_lexical_judges_hand_cases(answer, refs, em, cont, words):
    assert exact_match(answer, refs) is em
    assert contains(answer, refs) is cont
    assert contains_words(answer, refs) is words
    out = LexicalJudge("em").judge([{"response": answer, "references": refs}])[0]
    assert out.value is em and out.parsed


def test_lexical_case_and_normalisation_options():
    assert not exact_match("paris", ["Paris"], cased=True)
    assert exact_match("The Paris!", ["paris"], normalize=True)
    assert contains("I'd say: PARIS", ["Paris"]) and not contains("I'd say: PARIS", ["Paris"], cased=True)
    assert contains_words("It is Westminster Abbey.", ["Westminster Abbey"], normalize=True)
    with pytest.raises(ValueError, match="unknown lexical rule"):
        LexicalJudge("fuzzy")


def test_templates_are_the_papers():
    for name, t in TEMPLATES.items():
        assert "{question}" in t and "{response}" in t and t.rstrip().endswith("Evaluation (correct/incorrect):")
        assert ("{references}" in t) is (name != "NO_REFERENCE")
    main = TEMPLATES[MAIN_TEMPLATE]
    assert '"maybe correct" or "maybe incorrect"' in main and "December 20, in" in main
    assert main.startswith("You will be given a question, a set of reference answers and the answer")
    assert "5. Answers not in response" in TEMPLATES["HUMAN_GUIDELINES_V3"]
    assert "<{extract_tag}>" in TEMPLATES["TAG"]
    assert set(GUIDELINE_LENGTH_ORDER) <= set(TEMPLATES)
    assert len(TEMPLATES["DEFAULT"]) < len(TEMPLATES["HUMAN_GUIDELINES_V2"]) < len(TEMPLATES[MAIN_TEMPLATE])


def test_reference_order():
    refs = ["a", "b", "c", "d"]
    assert format_references(refs) == "a\nb\nc\nd"
    assert format_references(refs, "reversed") == "d\nc\nb\na"
    s = format_references(refs, "shuffled", seed=1)
    assert sorted(s.split("\n")) == refs and s == format_references(refs, "shuffled", seed=1)


ITEMS = [{"question": f"Q{i}?", "references": ["Paris", "City of Light"], "response": r}
         for i, r in enumerate(["Paris", "London", "Yes", "paris, France"])]


def test_generated_verdicts_count_unparsed_and_cache(tmp_path):
    model = load_model("fake:choice=Correct|incorrect|I am not sure|maybe correct", cached=False)
    j = CorrectnessJudge(model, mode="generate", cache=tmp_path / "c.sqlite")
    items = [{**it, "question": f"{it['question']} ({k})"} for k in range(10) for it in ITEMS]
    v1 = j.judge(items)
    t = tally(v1)
    assert t["n"] == 40 and t["unparsed"] > 0 and t["correct"] > 0 and t["incorrect"] > 0 and t["unsure"] > 0
    assert t["correct"] + t["incorrect"] + t["unparsed"] == 40
    assert all(v.value is None for v in v1 if not v.parsed)
    calls = model.calls
    v2 = j.judge(items)
    assert [v.value for v in v2] == [v.value for v in v1] and model.calls == calls  # re-scoring is free


def test_logprob_verdicts_read_the_preferred_label():
    for reply, value in (("correct", True), ("incorrect", False)):
        j = CorrectnessJudge(load_model(f"fake:const={reply}", cached=False))
        assert j.mode == "logprobs"
        vs = j.judge(ITEMS)
        assert all(v.value is value and v.parsed for v in vs)
        assert all(v.probs[reply] > 0.99 and set(v.probs) == {"correct", "incorrect"} for v in vs)


def test_oracle_judge_through_the_prompt():
    """A scripted judge that reads the prompt gives exactly the right verdicts: the prompt carries
    the question, the references and the response."""
    def oracle(text, i, p):
        resp = text.split("Model Response:\n")[1].split("\n")[0]
        refs = text.split("References:\n")[1].split("\n\nModel Response")[0].split("\n")
        return "correct" if exact_match(resp, refs) else "incorrect"

    model = FakeModel.from_function(oracle)
    for mode in ("generate", "logprobs"):
        for tpl in ("DEFAULT", MAIN_TEMPLATE, "HUMAN_GUIDELINES_V3"):
            vs = CorrectnessJudge(model, tpl, mode=mode, reference_order="reversed").judge(ITEMS)
            assert [v.value for v in vs] == [True, False, False, False]


def test_bad_judge_settings_are_config_errors():
    from solstice.errors import ConfigError

    m = load_model("fake:echo", cached=False)
    with pytest.raises(ConfigError, match="neither a known name"):
        CorrectnessJudge(m, "NOPE")
    with pytest.raises(ConfigError, match="TAG"):
        CorrectnessJudge(m, "TAG", mode="logprobs")
    with pytest.raises(ConfigError, match="reference order"):
        CorrectnessJudge(m, reference_order="sideways").text(ITEMS[0])
    assert CorrectnessJudge(m, "TAG").mode == "generate"


def test_tag_template_generation():
    model = load_model("fake:const=The response names Paris. <evaluation>correct</evaluation>", cached=False)
    vs = CorrectnessJudge(model, "TAG", mode="generate", max_new_tokens=64).judge(ITEMS[:2])
    assert all(v.value is True and v.parsed for v in vs)
    assert "<evaluation>" in CorrectnessJudge(model, "TAG").text(ITEMS[0])


def test_staged_judge(tmp_path):
    rules = {"rules": [
        {"match": "extract the answer", "reply": "It says <extract>London or Paris</extract>"},
        {"match": "split the response", "reply": "<split>London</split><split>Paris</split>"},
        {"match": "(?s)Answer:\\n```\\nParis\\n```\\n\\nReference:\\n```\\nParis", "reply": "MATCH"},
        {"match": "(?s)Answer:\\n```\\nLondon", "reply": "NO MATCH"},
    ], "default": "NO MATCH"}
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(rules))
    model = load_model(f"fake:{f}", cached=False)
    vs = StagedJudge(model).judge([
        {"question": "Capital of France?", "references": ["Paris"], "response": "Paris"},  # exact match, no calls
        {"question": "Capital of France?", "references": ["Paris"], "response": "London or Paris"},
    ])
    assert vs[0].value is True and vs[0].raw == "exact match"
    assert vs[1].value is False and vs[1].parsed  # "London" matches no reference
    unreadable = load_model("fake:const=no idea", cached=False)
    v = StagedJudge(unreadable).judge([{"question": "q", "references": ["Paris"], "response": "Paris!"}])[0]
    assert not v.parsed and v.value is None


def test_label_prefixes_and_shared_prefix_scoring(tiny_llama):
    from solstice.models.prefix import SharedPrefixModel

    sample = [{"role": "user", "content": "x"}]
    pre = label_prefixes(tiny_llama, ["correct", "incorrect"], sample)
    assert pre == {"correct": "c", "incorrect": "i"}  # byte-level tokenizer: first bytes differ
    assert label_prefixes(tiny_llama, ["correct", "cor"], sample) == {"correct": "correct", "cor": "cor"}
    short = "Decide whether the answer is right. " * 8 + "Q: {question}\nR: {references}\nA: {response}\nVerdict:"
    j = CorrectnessJudge(tiny_llama, short, share_prefix=False)
    prompts = [j.prompt(it) for it in ITEMS * 3]
    ref = tiny_llama.label_logprobs(prompts, ["c", "i"])
    sp = SharedPrefixModel(tiny_llama, min_prefix=8)
    got = sp.label_logprobs(prompts, ["c", "i"])
    assert max(abs(a[k] - b[k]) for a, b in zip(ref, got) for k in ("c", "i")) < 1e-4
    whole = sum(len(tiny_llama.encode(tiny_llama.render(p))) for p in prompts)
    assert sp.prefix_tokens_read + sp.suffix_tokens_read < whole / 2  # the template is read once
    # labels of different lengths are read label by label over the cached prefix: the exact log-likelihoods
    whole_labels = ["correct", "incorrect"]
    for a, b in zip(sp.label_logprobs(prompts[:2], whole_labels), tiny_llama.label_logprobs(prompts[:2], whole_labels)):
        assert all(abs(a[k] - b[k]) < 1e-4 for k in whole_labels)
    # the judge wraps hf models itself and gives the same verdicts as without sharing
    fast = CorrectnessJudge(tiny_llama, short).judge(ITEMS)
    slow = CorrectnessJudge(tiny_llama, short, share_prefix=False).judge(ITEMS)
    assert [v.value for v in fast] == [v.value for v in slow]
    assert all(abs(a.probs["correct"] - b.probs["correct"]) < 1e-4 for a, b in zip(fast, slow))
