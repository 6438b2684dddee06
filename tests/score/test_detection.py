"""Detection against the loopback judge: a label naming the activating token scores 1, an unrelated one 0.5."""

from __future__ import annotations

import asyncio

import pytest
from llm_server import context_for, synthetic_feature

from labeler.errors import ConfigError, ExplanationParseError
from labeler.label import split_examples
from labeler.score import build_scorer, known_scorers, register_scorer, scorer_class
from labeler.score.detection import DetectionScorer


def score(server, label, feature=None, *, no_negatives=False):
    feature = feature or synthetic_feature(0, word="class")
    split = split_examples(feature, n_explain=20, n_score=10)
    llm = context_for(server, timeout_s=0.5)

    async def go():
        async with llm:
            scorer = DetectionScorer(llm=llm)
            return await scorer.score(label, feature, split.activating, () if no_negatives else split.non_activating)

    return asyncio.run(go())


def test_a_matching_label_detects_every_context(llm_server):
    result = score(llm_server(), 'the word "class"')
    assert (result.method, result.scorer_model, result.value) == ("detection", "test-model", 1.0)
    assert result.n_examples == 20 and result.details["n_activating"] == result.details["n_non_activating"] == 10
    assert result.details["auroc"] == 1.0
    assert sorted(result.details["truth"]) == [0] * 10 + [1] * 10


def test_an_unrelated_label_scores_chance(llm_server):
    result = score(llm_server(), 'the word "zebra"')
    assert result.value == 0.5
    assert result.details["true_positive_rate"] == 0.0 and result.details["true_negative_rate"] == 1.0
    assert result.details["auroc"] == 0.5


def test_all_contexts_are_judged_in_one_request(llm_server):
    server = llm_server()
    score(server, 'the word "class"')
    assert server.stats()["received"] == 2  # the logprobs probe and one judgement


def test_without_logprobs_the_value_stands_and_auroc_says_why_it_is_missing(llm_server):
    result = score(llm_server(logprobs=False), 'the word "class"')
    assert result.value == 1.0
    assert result.details["auroc"] is None and result.details["auroc_skipped"] == "endpoint returns no logprobs"


def test_no_non_activating_windows_is_a_skip_with_reason(llm_server):
    result = score(llm_server(), 'the word "class"', no_negatives=True)
    assert result.value is None and "non-activating" in result.details["skipped"]


def test_unusable_answers_fail_with_the_reasons(llm_server):
    server = llm_server(fault_rate=1.0, fault_kinds=("truncated",), fault_only_seed=None)
    with pytest.raises(ExplanationParseError, match="detection scorer on feature 0: no usable answer in 3 attempts"):
        score(server, 'the word "class"')


def test_scorer_registry():
    assert {"detection", "fuzzing", "simulation"} <= set(known_scorers())
    assert scorer_class("detection") is DetectionScorer
    with pytest.raises(ValueError, match="already registered"):
        register_scorer("detection", DetectionScorer)
    with pytest.raises(ConfigError, match="unknown scorer 'nope'; known: .*detection"):
        scorer_class("nope")
    with pytest.raises(ConfigError, match="needs an LLM endpoint"):
        from labeler.config import LabelConfig

        build_scorer("detection", config=LabelConfig(), llm=None)
