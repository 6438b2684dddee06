"""Results into SQL (SQLite and PostgreSQL): labels, scores, label states, the llm_calls ledger, job totals."""

from __future__ import annotations

import asyncio

import pytest
from llm_server import context_for, synthetic_feature
from sqlalchemy import func, select

from labeler.config import LabelConfig
from labeler.errors import ConfigError
from labeler.label import FeatureLabelResult, label_features, llm_context_for, persist_label_results
from labeler.llm import Ledger
from labeler.settings import Settings
from labeler.store.features import upsert_features
from labeler.store.llm_calls import load_llm_calls
from labeler.store.models import Feature, Job, Label, LLMCall, Score
from labeler.store.sources import upsert_dataset, upsert_sae

CONFIG = LabelConfig(scorers=("detection", "fuzzing"))
WORDS = ["class", "def", "import"]


def seed_job(session, n_features: int) -> tuple[int, int, list]:
    sae_id = upsert_sae(
        session, name="t", source="local", model_name="m", hook_name="h", d_in=4, d_sae=8, architecture="standard", checksum="c"
    )
    dataset_id = upsert_dataset(
        session, name="d", source="s", tokenizer="tok", context_size=32, n_sequences=1, n_tokens=32, content_hash="h"
    )
    job = Job(submission_id="s", sae_id=sae_id, dataset_id=dataset_id, config={})
    session.add(job)
    session.flush()
    features = [synthetic_feature(i, word=WORDS[i % 3], sae_id=sae_id) for i in range(n_features)]
    upsert_features(session, sae_id=sae_id, stats=[f.stats for f in features], dataset_id=dataset_id, job_id=job.id)
    return sae_id, job.id, features


def sql_ledger(session, job_id):
    return Ledger(loader=lambda hashes: load_llm_calls(session, request_hashes=hashes), job_id=job_id)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_results_are_written_once_and_a_rerun_is_answered_from_sql(session, llm_server):
    server = llm_server()
    sae_id, job_id, features = seed_job(session, 3)
    results = asyncio.run(label_features(features, config=CONFIG, llm=context_for(server, ledger=sql_ledger(session, job_id))))
    persist_label_results(session, sae_id=sae_id, job_id=job_id, results=results)
    persist_label_results(session, sae_id=sae_id, job_id=job_id, results=results)  # a redelivered task
    session.commit()

    assert count(session, Label) == 3 and count(session, Score) == 6
    assert count(session, LLMCall) == server.stats()["received"] == 10  # 3 labels, 3 x 2 judgements, 1 probe
    states = dict(session.execute(select(Feature.feature_index, Feature.label_state)).all())
    assert states == {0: "labelled", 1: "labelled", 2: "labelled"}
    labels = dict(session.execute(select(Label.text, Label.job_id)).all())
    assert labels == {'the word "class"': job_id, 'the word "def"': job_id, 'the word "import"': job_id}
    job = session.get(Job, job_id)
    session.refresh(job)
    assert job.prompt_tokens == sum(r.prompt_tokens for r in results) > 0
    assert job.completion_tokens == sum(r.completion_tokens for r in results)
    assert job.cost_usd == pytest.approx(sum(r.cost_usd for r in results))

    ledger = sql_ledger(session, job_id)
    again = asyncio.run(label_features(features, config=CONFIG, llm=context_for(server, ledger=ledger)))
    assert server.stats()["received"] == 10  # no HTTP call the second time
    assert [r.candidates for r in again] == [r.candidates for r in results]
    assert ledger.n_loads == 3  # explain plan, logprobs probe, score plan: one SELECT each
    persist_label_results(session, sae_id=sae_id, job_id=job_id, results=again)
    session.commit()
    session.refresh(job)
    assert job.prompt_tokens == sum(r.prompt_tokens for r in results)  # recomputed, not added


def test_failed_features_keep_their_reason_and_pending_ones_their_state(session):
    sae_id, job_id, _ = seed_job(session, 3)
    results = [
        FeatureLabelResult(0, "failed", error="explain: feature 0: no usable label in 3 attempts (the answer is empty)"),
        FeatureLabelResult(1, "pending", error="the job's LLM budget is spent"),
    ]
    persist_label_results(session, sae_id=sae_id, job_id=job_id, results=results)
    session.commit()
    rows = {r.feature_index: (r.label_state, r.label_error) for r in session.scalars(select(Feature))}
    assert rows[0] == ("failed", "explain: feature 0: no usable label in 3 attempts (the answer is empty)")
    assert rows[1] == ("pending", None) and rows[2] == ("pending", None)
    assert count(session, Label) == 0


def test_the_job_context_comes_from_settings_and_its_ledger_from_sql(session, db_url, llm_server):
    server = llm_server()
    sae_id, job_id, features = seed_job(session, 2)
    session.commit()
    settings = Settings(llm_base_url=server.base_url, llm_model="test-model", llm_concurrency=4, llm_timeout_s=2.0)
    for _ in range(2):
        llm = llm_context_for(CONFIG, job_id=job_id, settings=settings, database_url=db_url)
        assert (llm.explain.model, llm.score.model, llm.options.concurrency) == ("test-model", "test-model", 4)
        results = asyncio.run(label_features(features, config=CONFIG, llm=llm))
        persist_label_results(session, sae_id=sae_id, job_id=job_id, results=results)
        session.commit()
    assert server.stats()["received"] == 7  # all paid in the first round, none in the second
    assert all(r.status == "labelled" for r in results)


def test_no_endpoint_means_no_context_unless_the_llm_explainer_is_asked_for():
    assert llm_context_for(LabelConfig(), settings=Settings()) is None
    with pytest.raises(ConfigError, match="LABELER_LLM_BASE_URL"):
        llm_context_for(LabelConfig(explainer="llm"), settings=Settings())


def test_stage_models_and_endpoints_resolve_with_fallbacks():
    settings = Settings(llm_base_url="http://a/v1", llm_model="base", score_base_url="http://b/v1", score_api_key="kb")
    llm = llm_context_for(LabelConfig(explain_model="big"), settings=settings)
    assert (llm.explain.endpoint.base_url, llm.explain.model) == ("http://a/v1", "big")
    assert (llm.score.endpoint.base_url, llm.score.endpoint.api_key, llm.score.model) == ("http://b/v1", "kb", "base")


def test_two_workers_of_one_job_stop_near_its_budget_together(db_url, session, llm_server, monkeypatch):
    """Each worker writes its paid calls every second and resyncs its budget from SQL: together they
    stop near the job's limit, where two private budgets would each spend up to it."""
    from labeler.label import BatchWriter
    from labeler.llm import Budget

    import labeler.label.pipeline as pipeline

    monkeypatch.setattr(pipeline, "CALLS_EVERY_S", 0.05)  # the 10 ms server makes a second a long time
    server = llm_server(latency_ms=10)
    sae_id, job_id, features = seed_job(session, 48)
    session.commit()
    limit = 40_000  # prompt tokens: about a third of what the 48 features need

    def worker(part):
        budget = Budget(max_prompt_tokens=limit)
        llm = context_for(server, concurrency=2, budget=budget, ledger=Ledger(job_id=job_id))
        write = BatchWriter(sae_id=sae_id, job_id=job_id, budget=budget, database_url=db_url)
        return label_features(part, config=CONFIG, llm=llm, sink=write)

    async def both():
        return await asyncio.gather(worker(features[0::2]), worker(features[1::2]))

    results = [r for part in asyncio.run(both()) for r in part]
    paid = session.scalar(select(func.coalesce(func.sum(LLMCall.prompt_tokens), 0)).where(LLMCall.job_id == job_id))
    biggest_call = session.scalar(select(func.max(LLMCall.prompt_tokens)))
    pending = sum(r.status == "pending" for r in results)
    assert pending > 0, "the budget stopped both workers"
    # between two hand-overs each worker may pay what the other has not written yet: a few calls each
    assert paid <= limit + 2 * 8 * biggest_call, (paid, limit)
    assert paid < 2 * limit * 0.8, "not two private budgets"
