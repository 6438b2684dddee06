"""End to end on real services: Redis broker, PostgreSQL, `labeler worker` processes, the LLM test server.

Each test submits the demo SAE (a subset of features) and waits for the job to finish, with faults
thrown in: a worker killed with SIGKILL mid-job, Redis restarted mid-job, connections cut.
"""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select

from labeler import jobs
from labeler.config import ActivationConfig, JobConfig, LabelConfig
from labeler.demo import DEMO_MODEL, DEMO_SAE_PATH
from labeler.settings import reset_settings
from labeler.store import jobs as store_jobs
from labeler.store.db import session_scope
from labeler.store.models import DisputeReason, Dispute, Example, Feature, Job, JobShard, Label, Score

FEATURES = tuple(range(0, 48))
TIMEOUT_S = 300


def demo_request(n_shards: int = 2, n_tokens: int = 8192) -> jobs.SubmitRequest:
    return jobs.SubmitRequest(
        sae_path=[str(DEMO_SAE_PATH)],
        model=DEMO_MODEL,
        dataset="builtin",
        config=JobConfig(
            activation=ActivationConfig(n_tokens=n_tokens, n_shards=n_shards, batch_size=16),
            label=LabelConfig(explainer="llm", scorers=("detection", "fuzzing", "embedding")),
            feature_indices=FEATURES,
        ),
    )


def wait_for(job_id: int, statuses: tuple[str, ...], workers, timeout_s: float = TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            status = store_jobs.get_job(session, job_id).status
        if status in statuses:
            return status
        if status == "failed":
            pytest.fail(f"job failed: {_error(job_id)}\n{workers.logs()}")
        if status == "done":
            pytest.fail(f"job finished before reaching {statuses}: the fault came too late to test anything")
        time.sleep(0.3)
    pytest.fail(f"job {job_id} still not {statuses} after {timeout_s}s\n{workers.logs()}")


def _error(job_id: int) -> str:
    with session_scope() as session:
        return store_jobs.get_job(session, job_id).error or ""


def assert_job_complete(job_id: int) -> None:
    """Every live feature of the subset has examples, labels, scores, and went through dispute rules."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job.status == "done", job.error
        features = session.scalars(select(Feature).where(Feature.job_id == job_id)).all()
        assert sorted(f.feature_index for f in features) == list(FEATURES)
        live = [f for f in features if not f.is_dead]
        assert live, "the demo SAE should have live features among the first 48"
        for f in live:
            kinds = set(session.scalars(select(Example.kind).where(Example.feature_id == f.id)))
            assert "top" in kinds, f"feature {f.feature_index} has no top examples"
            labels = session.scalars(select(Label).where(Label.feature_id == f.id)).all()
            assert labels or f.label_state == "failed", f"feature {f.feature_index} has no label and no failure"
            if f.label_state == "failed":
                assert f.label_error
                continue
            assert f.label_state == "labelled"
            methods = set(session.scalars(select(Score.method).join(Label).where(Label.feature_id == f.id)))
            assert {"detection", "fuzzing", "embedding"} <= methods, (f.feature_index, methods)
            assert f.current_label_id is not None
        shards = session.scalars(select(JobShard).where(JobShard.job_id == job_id)).all()
        assert all(s.status == "done" for s in shards)
        done, total = store_jobs.progress(session, job_id)["explaining"]
        assert done == total == len(live)
        # dispute evaluation ran: every dispute has at least one stored reason
        disputes = session.scalars(select(Dispute).join(Feature).where(Feature.job_id == job_id)).all()
        for d in disputes:
            assert session.scalar(select(func.count()).where(DisputeReason.dispute_id == d.id)) >= 1


def row_counts(job_id: int) -> dict[str, int]:
    with session_scope() as session:
        feature_ids = select(Feature.id).where(Feature.job_id == job_id)
        label_ids = select(Label.id).where(Label.feature_id.in_(feature_ids))
        return {
            "features": session.scalar(select(func.count()).where(Feature.job_id == job_id)),
            "examples": session.scalar(select(func.count()).where(Example.feature_id.in_(feature_ids))),
            "labels": session.scalar(select(func.count()).where(Label.feature_id.in_(feature_ids))),
            "scores": session.scalar(select(func.count()).where(Score.label_id.in_(label_ids))),
        }


def test_submit_runs_to_done_on_workers(service_env, workers, llm_server_url, monkeypatch):
    monkeypatch.setenv("LABELER_LLM_BASE_URL", llm_server_url)
    workers.env["LABELER_LLM_BASE_URL"] = llm_server_url
    reset_settings()
    workers.start()
    submission = jobs.submit(demo_request())
    (job_id,) = submission.job_ids
    wait_for(job_id, ("done",), workers)
    assert_job_complete(job_id)
    before = row_counts(job_id)
    # a resume of a finished job changes nothing
    assert jobs.resume_job(job_id) == []
    assert row_counts(job_id) == before


def test_worker_killed_mid_job_then_new_worker_completes_it(service_env, workers, llm_server_url, monkeypatch):
    monkeypatch.setenv("LABELER_LLM_BASE_URL", llm_server_url)
    workers.env["LABELER_LLM_BASE_URL"] = llm_server_url
    reset_settings()
    first = workers.start(queues="gpu,llm")
    (job_id,) = jobs.submit(demo_request(n_shards=4, n_tokens=16384)).job_ids
    wait_for(job_id, ("caching", "merging", "explaining"), workers)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    workers.start(queues="gpu,llm")
    wait_for(job_id, ("done",), workers)
    assert_job_complete(job_id)
    counts = row_counts(job_id)
    # nothing lost, nothing duplicated: one row per natural key, bounded by the job's configuration
    config = demo_request().config
    live = counts["features"]
    assert counts["features"] == len(FEATURES)
    per_feature = config.activation.top_k + config.activation.n_quantiles * config.activation.per_quantile + config.activation.n_negatives
    assert counts["examples"] <= live * per_feature
    assert counts["labels"] <= live * config.label.n_candidates


def test_redis_restart_and_cut_connections_mid_job(service_env, workers, redis_server, llm_server_url, monkeypatch):
    monkeypatch.setenv("LABELER_LLM_BASE_URL", llm_server_url)
    workers.env["LABELER_LLM_BASE_URL"] = llm_server_url
    reset_settings()
    workers.start()
    (job_id,) = jobs.submit(demo_request(n_shards=4, n_tokens=16384)).job_ids
    wait_for(job_id, ("caching", "merging", "explaining"), workers)
    redis_server.client().client_kill_filter(_type="normal")
    redis_server.stop()
    time.sleep(1.0)
    redis_server.start()
    wait_for(job_id, ("done",), workers)
    assert_job_complete(job_id)
