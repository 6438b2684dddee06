"""Reading labels and verdicts out of model answers, and refusing the unusable ones with a reason."""

from __future__ import annotations

import math

import pytest

from labeler.errors import ExplanationParseError
from labeler.llm.parse import (
    binary_probabilities,
    expected_levels,
    normalise_label,
    parse_binary_list,
    parse_label,
    parse_level_lists,
)
from labeler.llm.request import TokenLogprob


@pytest.mark.parametrize(
    "answer",
    [
        'the word "class"',
        'Label: the word "class"',
        '"the word \\"class\\""',
        '**Label:** the word "class".',
        '```\nthe word "class"\n```',
        '{"label": "the word \\"class\\""}',
        '```json\n{"explanation": "the word \\"class\\""}\n```',
        '["the word \\"class\\""]',
        'Here is a label:\nthe word "class"',
        'The tokens are all Python keywords.\nLabel: the word "class"',
    ],
)
def test_label_is_read_from_the_usual_answer_shapes(answer):
    assert parse_label(answer) == 'the word "class"'


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ('""', "empty"),
        ("I'm sorry, but I can't help with that request.", "refusal"),
        ("I cannot determine a pattern from these examples.", "refusal"),
        (" ".join(["word"] * 16), "too long"),
        ("@@## %%&& **!! ~~", "garbage"),
        ("12 34 56 !!", "garbage"),
        ('{"label": "the wor', "truncated or invalid JSON"),
        ("[1, 0, 1", "truncated or invalid JSON"),
        ('{"score": 3}', "holds no label"),
    ],
)
def test_unusable_answers_raise_with_their_reason(answer, reason):
    with pytest.raises(ExplanationParseError, match=reason):
        parse_label(answer)


def test_labels_differing_in_case_and_punctuation_normalise_alike():
    assert normalise_label('The word "class".') == normalise_label("the Word class")
    assert normalise_label("the word class") != normalise_label("the word def")


def test_binary_list_accepts_numbers_booleans_and_words():
    assert parse_binary_list("[1, 0, true, false, \"yes\", \"no\"]", 6) == [1, 0, 1, 0, 1, 0]
    assert parse_binary_list("Sure:\n```json\n[0, 1]\n```", 2) == [0, 1]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [("[1, 0]", "expected 3 verdicts"), ("[1, 0, 1", "no JSON list"), ("[1, 2, 0]", "neither 0 nor 1"), ("yes", "no JSON list")],
)
def test_binary_list_refuses_wrong_answers(answer, reason):
    with pytest.raises(ExplanationParseError, match=reason):
        parse_binary_list(answer, 3)


def test_level_lists_must_match_context_lengths():
    assert parse_level_lists("[[0, 10, 3], [12, -1]]", [3, 2]) == [[0, 10, 3], [10, 0]]
    with pytest.raises(ExplanationParseError, match="context 2: expected 3 predictions, got 2"):
        parse_level_lists("[[0, 10, 3], [1, 2]]", [3, 3])
    with pytest.raises(ExplanationParseError, match="expected 2 lists"):
        parse_level_lists("[[0, 10, 3]]", [3, 3])


def tok(token: str, p: float, *alts: tuple[str, float]) -> TokenLogprob:
    return TokenLogprob(token, math.log(p), ((token, math.log(p)), *((t, math.log(q)) for t, q in alts)))


def test_binary_probabilities_normalise_over_zero_and_one():
    logprobs = [tok("[", 1.0), tok("1", 0.6, ("0", 0.2)), tok(",", 1.0), tok("0", 0.9, ("1", 0.1)), tok("]", 1.0)]
    probs = binary_probabilities(logprobs, 2)
    assert probs == pytest.approx([0.75, 0.1])
    assert binary_probabilities(logprobs, 3) is None  # does not line up with the verdicts
    assert binary_probabilities(None, 2) is None


def test_expected_levels_weight_each_number_by_its_probability():
    logprobs = [tok("[[", 1.0), tok("10", 0.5, ("0", 0.5)), tok(",", 1.0), tok("0", 1.0), tok("]]", 1.0)]
    assert expected_levels(logprobs, 2) == pytest.approx([5.0, 0.0])
    assert expected_levels(logprobs, 3) is None


def test_quotes_inside_a_label_survive():
    assert parse_label('"class" versus "def" keywords') == '"class" versus "def" keywords'
    assert parse_label("'variable names'") == "variable names"
