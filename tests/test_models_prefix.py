"""models.prefix: one implementation serving judge prompts (SharedPrefixModel, grouped prefixes,
cache kept across calls) and forced-choice task prompts (fast_label_logprobs, labels sharing all
but their last token read in one pass). Values must equal per-label loglikelihood."""

import math

import pytest

from solstice.models.fake import FakeModel
from solstice.models.prefix import (
    SharedPrefixModel,
    common_prefix_len,
    fast_label_logprobs,
    label_plan,
    shared_prefix,
)

BASE = ("You are shown two gambling machines and must choose one of them to win as many dollars as you can. "
        "Read both descriptions carefully. \n\nMachine A: ")
OTHER = "A completely different instruction that shares nothing with the first template, at length. " * 2


def _prompts(k, base=BASE):
    return [[{"role": "user", "content": base + f"${10 + 7 * i}.0 with {i}% chance" + " more" * (i % 3) + ". Answer:"}]
            for i in range(k)]


def _exact(model, prompts, labels):
    return [{lab: r.logprob for lab, r in zip(labels, model.loglikelihood([(p, lab) for lab in labels]))} for p in prompts]


def _close(got, exact, labels):
    assert len(got) == len(exact)
    for g, e in zip(got, exact):
        assert set(g) == set(labels)
        for lab in labels:
            assert g[lab] == pytest.approx(e[lab], abs=1e-4)


@pytest.mark.parametrize("labels", [["A", "B"], ["Choice 1", "Choice 2"], [" yes", " no", " maybe"]])
def test_matches_loglikelihood_with_and_without_prefix_sharing(tiny_llama, labels):
    prompts = _prompts(7)
    exact = _exact(tiny_llama, prompts, labels)
    for share in (True, False):
        _close(fast_label_logprobs(tiny_llama, prompts, labels, share_prefix=share), exact, labels)
    assert fast_label_logprobs(tiny_llama, [], labels) == []


def test_multi_token_labels_are_read_in_one_pass(tiny_llama):
    text = tiny_llama.render(_prompts(1)[0])
    ids, n_shared, finals = label_plan(tiny_llama, text, ["Choice 1", "Choice 2"])
    assert n_shared >= 1 and finals[0] != finals[1]  # "Choice " is input, only the digit differs
    assert label_plan(tiny_llama, text, ["correct", "incorrect"]) is None  # different lengths: no plan


def test_two_templates_in_one_call_form_two_groups_and_cache_is_reused(tiny_llama):
    prompts = _prompts(4) + _prompts(4, OTHER)
    labels = ["A", "B"]
    sp = SharedPrefixModel(tiny_llama, min_prefix=8)
    _close(sp.label_logprobs(prompts, labels), _exact(tiny_llama, prompts, labels), labels)
    whole = sum(len(tiny_llama.encode(tiny_llama.render(p))) for p in prompts)
    assert sp.prefix_tokens_read + sp.suffix_tokens_read < whole  # each template read once
    read = sp.prefix_tokens_read
    sp.label_logprobs(prompts[4:], labels)  # the last prefix is still cached
    assert sp.prefix_tokens_read == read


def test_single_characters_form_a_subdistribution(tiny_llama):
    chars = [chr(c) for c in range(33, 127)]
    for g in fast_label_logprobs(tiny_llama, _prompts(2), chars):
        total = sum(math.exp(v) for v in g.values())
        assert 0 < total <= 1 + 1e-6


def test_other_backends_fall_through_to_their_own_label_logprobs():
    fake = FakeModel.from_function(lambda text, i, p: "B")
    got = fast_label_logprobs(fake, _prompts(2), ["A", "B"])
    assert all(g["B"] > g["A"] for g in got)
    assert shared_prefix(fake) is fake
    with pytest.raises(TypeError):
        SharedPrefixModel(fake)


def test_common_prefix_len():
    assert common_prefix_len([]) == 0
    assert common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_len([[5], [6]]) == 0


def test_labels_of_different_lengths_still_share_the_prefix(tiny_llama):
    """Whole labels like "correct" vs "incorrect" (no one-pass plan) are read label by label over
    the cached prefix, with the exact sequence log-probabilities."""
    prompts = _prompts(5)
    labels = ["correct", "incorrect"]
    sp = SharedPrefixModel(tiny_llama, min_prefix=8)
    _close(sp.label_logprobs(prompts, labels), _exact(tiny_llama, prompts, labels), labels)
    full = sum(len(tiny_llama.encode(tiny_llama.render(p))) for p in prompts)
    assert sp.prefix_tokens_read > 0 and sp.suffix_tokens_read < full
