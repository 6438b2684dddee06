"""Fuzzing against the loopback judge: correct vs randomly moved markings."""

from __future__ import annotations

import asyncio

import numpy as np
from llm_server import context_for, synthetic_feature

from labeler.label import split_examples
from labeler.score.fuzzing import FuzzingScorer, wrong_marks


def score(server, label, feature=None):
    feature = feature or synthetic_feature(1, word="return")
    split = split_examples(feature, n_explain=20, n_score=10)
    llm = context_for(server)

    async def go():
        async with llm:
            return await FuzzingScorer(llm=llm).score(label, feature, split.activating, split.non_activating)

    return asyncio.run(go())


def test_a_matching_label_tells_true_marks_from_moved_ones(llm_server):
    result = score(llm_server(), 'the word "return"')
    assert (result.method, result.value, result.n_examples) == ("fuzzing", 1.0, 10)
    assert result.details["n_correct"] == result.details["n_fuzzed"] == 5
    assert result.details["auroc"] == 1.0


def test_an_unrelated_label_scores_chance(llm_server):
    result = score(llm_server(), 'the word "zebra"')
    assert result.value == 0.5


def test_the_trial_is_the_same_for_the_same_feature_and_label(llm_server):
    feature = synthetic_feature(2)
    split = split_examples(feature, n_explain=20, n_score=10)
    scorer = FuzzingScorer(llm=context_for(llm_server()))
    a = scorer.trial("x", feature, split.activating, split.non_activating)
    b = scorer.trial("x", feature, split.activating, split.non_activating)
    assert a == b
    assert sum("<<" in c for c in a.contexts) == len(a.contexts)


def test_wrong_marks_avoid_active_tokens_and_keep_their_count():
    rng = np.random.default_rng(0)
    active = np.array([False, True, True, False, False, False])
    marks = wrong_marks(active, rng)
    assert marks.sum() == 2 and not (marks & active).any()
    assert wrong_marks(np.ones(3, dtype=bool), rng) is None
