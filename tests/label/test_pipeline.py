"""The labelling pipeline end to end against the loopback server: labels, scores, faults, budget, cache."""

from __future__ import annotations

import asyncio

import pytest
from llm_server import context_for, synthetic_feature

from labeler.config import LabelConfig
from labeler.errors import ConfigError
from labeler.label import label_features, resolve_explainer
from labeler.llm import Budget, Ledger

WORDS = ["class", "def", "import", "return", "yield", "lambda", "while", "assert"]
SCORERS = ("detection", "fuzzing", "simulation")


def features(n: int):
    return [synthetic_feature(i, word=WORDS[i % len(WORDS)]) for i in range(n)]


def run(feats, llm, config=None, **kw):
    config = config or LabelConfig(scorers=SCORERS)
    return asyncio.run(label_features(feats, config=config, llm=llm, explainer=kw.pop("explainer", "llm"), **kw))


def test_every_feature_gets_its_label_and_every_score(llm_server):
    server = llm_server()
    llm = context_for(server)
    results = run(features(4), llm)
    assert [r.feature_index for r in results] == [0, 1, 2, 3]
    for r, word in zip(results, WORDS):
        assert r.status == "labelled" and r.error is None
        assert [c.text for c in r.candidates] == [f'the word "{word}"']
        assert {s.method: s.value for _, s in r.scores}["detection"] == 1.0
        assert {s.method for _, s in r.scores} == set(SCORERS)
        assert all(pos == 0 for pos, _ in r.scores)
        assert r.prompt_tokens > 0 and r.llm_calls
    # 4 explanations + 4 x 3 judgements + 1 logprobs probe, nothing asked twice
    stats = server.stats()
    assert stats["received"] == 17 and stats["max_paid_per_request"] == 1
    assert sum(len(r.llm_calls) for r in results) == 17
    assert sum(r.prompt_tokens for r in results) == sum(e.prompt_tokens for r in results for e in r.llm_calls)


def test_running_the_same_batch_again_makes_no_http_call(llm_server):
    server = llm_server()
    ledger = Ledger()
    first = run(features(3), context_for(server, ledger=ledger))
    received = server.stats()["received"]
    second = run(features(3), context_for(server, ledger=ledger))
    assert server.stats()["received"] == received
    assert [r.candidates for r in second] == [r.candidates for r in first]
    assert [r.scores for r in second] == [r.scores for r in first]
    assert all(r.prompt_tokens == 0 and r.cost_usd == 0 and not r.llm_calls for r in second)


def test_several_candidates_are_each_scored(llm_server):
    llm = context_for(llm_server())
    [result] = run(features(1), llm, LabelConfig(n_candidates=2, scorers=("detection",)))
    assert len(result.candidates) == 2
    assert sorted(pos for pos, _ in result.scores) == [0, 1]


def test_with_injected_faults_every_feature_ends_labelled_or_failed_with_a_reason(llm_server):
    server = llm_server(fault_rate=0.2, fault_kinds=("429", "500", "timeout", "garbage", "truncated"))
    ledger = Ledger()
    llm = context_for(server, ledger=ledger, timeout_s=2.0, max_retries=3, concurrency=16)
    results = run(features(24), llm)
    assert {r.status for r in results} <= {"labelled", "failed"}
    for r in results:
        if r.status == "failed":
            assert r.error and (r.error.startswith("explain: ") or " scorer" in r.error)
        else:
            assert r.candidates and {s.method for _, s in r.scores} == set(SCORERS)
    assert sum(r.status == "labelled" for r in results) >= 12
    stats = server.stats()
    assert stats["by_outcome"].keys() - {"ok"}  # faults really happened
    assert stats["max_paid_per_request"] == 1  # no identical request paid twice
    paid = [e.request_hash for r in results for e in r.llm_calls]
    assert len(paid) == len(set(paid)) == stats["distinct_paid"]
    received = stats["received"]
    run(features(24), context_for(server, ledger=ledger, timeout_s=2.0, max_retries=3))
    assert server.stats()["received"] == received  # what was paid for is never asked again


def test_a_spent_budget_leaves_features_pending_not_failed(llm_server):
    server = llm_server()
    budget = Budget(max_prompt_tokens=3000)
    llm = context_for(server, budget=budget, concurrency=2)
    results = run(features(8), llm, LabelConfig(scorers=("detection",)))
    statuses = [r.status for r in results]
    assert "pending" in statuses and "failed" not in statuses
    for r in results:
        if r.status == "pending":
            assert not r.candidates and not r.scores and "budget is spent" in r.error
    assert budget.spent_prompt_tokens <= 3000
    assert sum(r.prompt_tokens for r in results) == budget.spent_prompt_tokens


def test_without_an_endpoint_llm_scorers_are_skipped_with_the_reason():
    class FixedExplainer:
        async def explain(self, feature, shown, n_candidates):
            from labeler.types import LabelCandidate

            return [LabelCandidate(feature.feature_index, "fixed", "offline", "fixed")]

    from labeler import explain

    explain._EXPLAINERS["fixed-test"] = FixedExplainer
    try:
        [result] = asyncio.run(
            label_features(features(1), config=LabelConfig(scorers=("detection",)), llm=None, explainer="fixed-test")
        )
    finally:
        del explain._EXPLAINERS["fixed-test"]
    assert result.status == "labelled"
    [(_, score)] = result.scores
    assert score.value is None and score.details == {"skipped": "no LLM endpoint configured"}


def test_auto_picks_the_llm_only_when_there_is_an_endpoint(llm_server):
    assert resolve_explainer("auto", context_for(llm_server())) == "llm"
    assert resolve_explainer("auto", None) == "offline"
    assert resolve_explainer("llm", None) == "llm"
    with pytest.raises(ConfigError, match="LABELER_LLM_BASE_URL"):
        asyncio.run(label_features(features(1), config=LabelConfig(), llm=None, explainer="llm"))


def test_a_scorer_without_usable_answers_fails_the_feature_but_keeps_what_was_found(llm_server):
    server = llm_server(fault_rate=1.0, fault_kinds=("garbage",), fault_only_task="detection")
    [result] = run(features(1), context_for(server), LabelConfig(scorers=("detection", "fuzzing")))
    assert result.status == "failed"
    assert result.error.startswith("detection scorer on feature 0: no usable answer in 3 attempts (the answer holds no JSON list")
    assert [c.text for c in result.candidates] == ['the word "class"']
    assert [s.method for _, s in result.scores] == ["fuzzing"]


def test_finished_features_and_paid_calls_are_handed_over_while_the_batch_runs(llm_server, monkeypatch):
    import labeler.label.pipeline as pipeline

    monkeypatch.setattr(pipeline, "CALLS_EVERY_S", 0.05)
    server = llm_server(latency_ms=20)
    llm = context_for(server, concurrency=4)

    class Sink:
        def __init__(self):
            self.features: list[list[int]] = []
            self.calls: list[str] = []
            self.received_at_first_chunk: int | None = None

        def write_features(self, results):
            self.features.append([r.feature_index for r in results])
            if self.received_at_first_chunk is None:
                self.received_at_first_chunk = server.stats()["received"]

        def write_calls(self, entries):
            self.calls += [e.request_hash for e in entries]

    sink = Sink()
    results = run(features(10), llm, sink=sink)
    assert sorted(i for chunk in sink.features for i in chunk) == list(range(10)), "every feature exactly once"
    assert [len(chunk) for chunk in sink.features[:-1]] == [4] * (len(sink.features) - 1)
    assert sink.received_at_first_chunk < server.stats()["received"], "the first chunk left before the batch ended"
    paid = [e.request_hash for r in results for e in r.llm_calls]
    assert sorted(sink.calls) == sorted(paid) and len(set(sink.calls)) == len(sink.calls), "every paid call exactly once"
    assert {r.feature_index: r.status for r in results} == {i: "labelled" for i in range(10)}


def test_the_frozen_heap_is_set_up_once_and_restored_by_the_last_batch_out():
    import gc
    import threading

    from labeler.label.pipeline import YOUNG_GC_THRESHOLD, frozen_heap

    before = gc.get_threshold()
    inside, release = threading.Event(), threading.Event()

    def other_batch():
        with frozen_heap():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other_batch)
    thread.start()
    inside.wait(10)
    with frozen_heap():
        assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD and gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD, "the other batch is still running"
    release.set()
    thread.join(10)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_sink_that_fails_to_write_fails_the_batch(llm_server):
    class BrokenSink:
        def write_features(self, results):
            raise RuntimeError("database went away")

        def write_calls(self, entries):
            pass

    with pytest.raises(RuntimeError, match="database went away"):
        run(features(6), context_for(llm_server(), concurrency=2), sink=BrokenSink())
