"""fast_label_logprobs: the same numbers as loglikelihood, in one pass, with a shared prompt prefix."""

import math

import pytest

from solstice.models.fake import FakeModel
from solstice.models.prefix import fast_label_logprobs

BASE = ("You are shown two gambling machines and must choose one of them to win as many dollars as you can. "
        "Read both descriptions carefully. \n\nMachine A: ")


def _prompts(k):
    return [[{"role": "user", "content": BASE + f"${10 + 7 * i}.0 with {i}% chance" + " more" * (i % 3) + ". Answer:"}]
            for i in range(k)]


@pytest.mark.parametrize("labels", [["A", "B"], ["Choice 1", "Choice 2"], [" yes", " no", " maybe"]])
def test_matches_loglikelihood_with_and_without_prefix_sharing(tiny_llama, labels):
    prompts = _prompts(7)
    exact = [{lab: r.logprob for lab, r in zip(labels, tiny_llama.loglikelihood([(p, lab) for lab in labels]))} for p in prompts]
    for share in (True, False):
        got = fast_label_logprobs(tiny_llama, prompts, labels, share_prefix=share)
        for g, e in zip(got, exact):
            assert set(g) == set(labels)
            for lab in labels:
                assert g[lab] == pytest.approx(e[lab], abs=1e-4)
    assert fast_label_logprobs(tiny_llama, [], labels) == []


def test_single_characters_form_a_subdistribution(tiny_llama):
    chars = [chr(c) for c in range(33, 127)]
    got = fast_label_logprobs(tiny_llama, _prompts(2), chars)
    for g in got:
        total = sum(math.exp(v) for v in g.values())
        assert 0 < total <= 1 + 1e-6


def test_other_backends_fall_through_to_their_own_label_logprobs():
    fake = FakeModel.from_function(lambda text, i, p: "B")
    got = fast_label_logprobs(fake, _prompts(2), ["A", "B"])
    assert all(g["B"] > g["A"] for g in got)
