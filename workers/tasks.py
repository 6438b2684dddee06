"""Celery tasks: take ids, call one labeler.pipeline step, enqueue what it returns. Nothing else.

Steps are idempotent (upserts on natural keys, compare-and-set stage transitions), which is what makes
`acks_late` + `reject_on_worker_lost` safe: a message redelivered after a worker died changes nothing twice.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from labeler import pipeline
from labeler.errors import LabelerError, LLMError
from labeler.store import jobs as store_jobs
from labeler.store.db import session_scope
from workers.app import app
from workers.dispatch import dispatch

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, ConnectionError, TimeoutError)
RETRY = dict(autoretry_for=TRANSIENT, retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=5)


def _run(step: str, job_ids: list[int], *args) -> None:
    """Run a step; a permanent error fails its jobs with the reason instead of looping forever."""
    try:
        dispatch(pipeline.STEPS[step](*args))
    except TRANSIENT:
        raise
    except LabelerError as exc:
        log.warning("%s%r failed: %s", step, args, exc)
        _fail(job_ids, f"{step}: {exc}")
    except Exception as exc:  # outermost shell: record, then let Celery log the traceback
        _fail(job_ids, f"{step}: {type(exc).__name__}: {exc}")
        raise


def _fail(job_ids: list[int], error: str) -> None:
    with session_scope() as session:
        for job_id in job_ids:
            store_jobs.fail_job(session, job_id=job_id, error=error)


def _submission_job_ids(submission_id: str) -> list[int]:
    with session_scope() as session:
        return [j.id for j in store_jobs.submission_jobs(session, submission_id)]


@app.task(**RETRY)
def cache_shard(submission_id: str, shard_index: int) -> None:
    _run("cache_shard", _submission_job_ids(submission_id), submission_id, shard_index)


@app.task(**RETRY)
def merge(job_id: int) -> None:
    _run("merge", [job_id], job_id)


@app.task(**RETRY)
def label_batch(job_id: int, feature_indices: list[int], explain_model: str | None = None) -> None:
    _run("label_batch", [job_id], job_id, feature_indices, explain_model)


@app.task(**RETRY)
def finalize(job_id: int) -> None:
    _run("finalize", [job_id], job_id)


@app.task(autoretry_for=TRANSIENT + (LLMError,), retry_backoff=2, max_retries=3)
def relabel_feature(feature_id: int, explain_model: str | None = None) -> None:
    pipeline.relabel_feature(feature_id, explain_model)


@app.task(autoretry_for=TRANSIENT, max_retries=2, ignore_result=False)
def try_text(sae_id: int, feature_index: int, text: str) -> list[tuple[str, float]]:
    return pipeline.try_text(sae_id=sae_id, feature_index=feature_index, text=text)
