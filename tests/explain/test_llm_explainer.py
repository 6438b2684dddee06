"""The LLM explainer against the loopback server: prompt, candidates, retries, and refusing bad answers."""

from __future__ import annotations

import asyncio

import pytest
from llm_server import context_for, synthetic_feature

from labeler.config import LabelConfig
from labeler.errors import ConfigError, ExplanationParseError
from labeler.explain import build_explainer, explainer_class, known_explainers, register_explainer
from labeler.explain.llm import LLMExplainer
from labeler.label import split_examples


def explain(server, feature, *, n=1, config=None, **explainer_kw):
    config = config or LabelConfig(n_candidates=n)
    llm = context_for(server, timeout_s=0.5)
    shown = split_examples(feature, n_explain=config.n_explain_examples, n_score=config.n_score_examples).shown

    async def go():
        async with llm:
            explainer = LLMExplainer(config=config, llm=llm, **explainer_kw)
            return await explainer.explain(feature, shown, n)

    return asyncio.run(go())


def test_the_label_names_the_marked_tokens(llm_server):
    server = llm_server()
    [candidate] = explain(server, synthetic_feature(3, word="import"))
    assert candidate.text == 'the word "import"'
    assert (candidate.feature_index, candidate.source, candidate.method, candidate.model) == (3, "llm", "llm", "test-model")
    assert candidate.prompt_hash and candidate.prompt_tokens > 0 and candidate.cost_usd > 0


def test_prompt_marks_active_tokens_and_optionally_shows_values(llm_server):
    feature = synthetic_feature(0, word="class")
    shown = split_examples(feature, n_explain=4, n_score=4).shown
    llm = context_for(llm_server())
    plain = LLMExplainer(config=LabelConfig(), llm=llm).messages(feature, shown)
    valued = LLMExplainer(config=LabelConfig(show_activation_values=True), llm=llm).messages(feature, shown)
    user = plain[1][1]
    assert user.count("<<class>>") >= len(shown) and "activations:" not in user
    assert "<<class>>=10" in valued[1][1] and "from 0 to 10" in valued[0][1]


def test_several_candidates_come_from_one_request_and_are_distinct(llm_server):
    server = llm_server()
    candidates = explain(server, synthetic_feature(0), n=3)
    assert [c.text for c in candidates] == ['the word "class"', 'the token "class"', 'occurrences of "class"']
    assert server.stats()["received"] == 1


def test_an_endpoint_ignoring_n_is_topped_up_with_single_requests(llm_server):
    server = llm_server(ignore_n=True)
    candidates = explain(server, synthetic_feature(0), n=3)
    # the test server answers choice 0 for every single request: duplicates are dropped, not padded
    assert [c.text for c in candidates] == ['the word "class"']
    assert server.stats()["received"] == 3


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("garbage", "garbage"),
        ("truncated", "truncated or invalid JSON"),
        ("empty", "empty"),
        ("refusal", "refusal"),
        ("long", "too long"),
    ],
)
def test_each_kind_of_malformed_answer_fails_after_bounded_retries(llm_server, kind, reason):
    server = llm_server(fault_rate=1.0, fault_kinds=(kind,))
    with pytest.raises(ExplanationParseError, match=f"no usable label in 3 attempts.*{reason}"):
        explain(server, synthetic_feature(5))
    assert server.stats()["received"] == 3  # three different requests, each paid once


def test_a_malformed_first_answer_is_retried_with_another_seed(llm_server):
    server = llm_server(fault_rate=1.0, fault_kinds=("garbage",), fault_only_seed=0)
    [candidate] = explain(server, synthetic_feature(0))
    assert candidate.text == 'the word "class"'
    assert server.stats()["received"] == 2


def test_the_plan_lists_every_request_explain_may_send(llm_server):
    server = llm_server(fault_rate=1.0, fault_kinds=("garbage",), fault_only_seed=0)
    feature = synthetic_feature(0)
    shown = split_examples(feature, n_explain=20, n_score=10).shown
    llm = context_for(server)

    async def go():
        async with llm:
            explainer = LLMExplainer(config=LabelConfig(), llm=llm)
            planned = {r.hash for r in await explainer.planned_requests(feature, shown, 1)}
            await explainer.explain(feature, shown, 1)
            return planned

    planned = asyncio.run(go())
    assert {e.request_hash for e in llm.ledger.entries()} <= planned


def test_the_llm_explainer_without_an_endpoint_says_how_to_set_one():
    with pytest.raises(ConfigError, match="LABELER_LLM_BASE_URL"):
        build_explainer("llm", config=LabelConfig(), llm=None)


def test_registry_refuses_duplicates_and_lists_known_names_for_unknown_ones():
    assert "llm" in known_explainers()
    assert explainer_class("llm") is LLMExplainer
    with pytest.raises(ValueError, match="already registered"):
        register_explainer("llm", LLMExplainer)
    with pytest.raises(ConfigError, match="unknown explainer 'gpt'; known: .*llm"):
        explainer_class("gpt")
