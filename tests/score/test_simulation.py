"""Simulation against the loopback simulator: correlation of predicted 0-10 with the true activations."""

from __future__ import annotations

import asyncio

from llm_server import context_for, synthetic_feature

from labeler.label import split_examples
from labeler.score.simulation import NO_LOGPROBS, SimulationScorer


def score(server, label, feature=None):
    feature = feature or synthetic_feature(4, word="yield", wordpiece=True)
    split = split_examples(feature, n_explain=20, n_score=10)
    llm = context_for(server)

    async def go():
        async with llm:
            return await SimulationScorer(llm=llm).score(label, feature, split.activating, split.non_activating)

    return asyncio.run(go())


def test_a_matching_label_predicts_the_activations(llm_server):
    result = score(llm_server(), 'the word "yield"')
    assert result.method == "simulation" and result.value > 0.9
    assert result.details["prediction"] == "expected value from logprobs"
    assert result.n_examples == 10 and result.details["n_tokens"] == 10 * 32


def test_an_unrelated_label_predicts_nothing_and_scores_zero(llm_server):
    result = score(llm_server(), 'the word "zebra"')
    assert result.value == 0.0 and result.details["constant_prediction"] is True


def test_without_logprobs_the_scorer_is_skipped_with_its_reason(llm_server):
    server = llm_server(logprobs=False)
    result = score(server, 'the word "yield"')
    assert result.value is None and result.details == {"skipped": NO_LOGPROBS}
    assert server.stats()["received"] == 1  # only the probe
