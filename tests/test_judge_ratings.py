"""The shared bracket-rating locator (judge/ratings.py) on top of the shared score reader."""

from __future__ import annotations

import pytest

from solstice.judge.ratings import parse_bracket_rating, parse_bracket_rating_reference


@pytest.mark.parametrize("text, value, confident", [
    ("Rating: [[87]]", 87.0, True),
    ("first [[20]] then Rating: [[70]]", 70.0, True),  # an explicit rating line beats an earlier [[x]]
    ("Rating: [[3]] ... Rating: [[9]]", 9.0, True),  # the last rating line counts
    ("[[ 42.5 ]]", 42.5, True),
    ("score 99 and [5]", None, False),  # never a bare or single-bracket number
    ("Rating: [[150]]", None, False),
])
def test_strict(text, value, confident):
    v = parse_bracket_rating(text)
    assert (v.value, v.parsed, v.confident) == (value, value is not None, confident)
    assert v.raw == text


def test_clip_and_range():
    v = parse_bracket_rating("Rating: [[150]]", out_of_range="clip")
    assert (v.value, v.parsed, v.confident) == (100.0, True, False)
    assert parse_bracket_rating("Rating: [[7]]", 1, 10).value == 7.0
    assert not parse_bracket_rating("Rating: [[0]]", 1, 10).parsed
    with pytest.raises(ValueError):
        parse_bracket_rating("Rating: [[5]]", out_of_range="wrap")


def test_reference_rule_is_permissive():
    assert parse_bracket_rating_reference("see [3]; Rating: [[80]]").value == 80.0
    assert parse_bracket_rating_reference("see [3] only").value == 3.0
    assert parse_bracket_rating_reference("[[250]]").value == 250.0  # no range check upstream
    assert not parse_bracket_rating_reference("[[-5]]").parsed  # the reference reads no sign
