"""Rows for jobs, their shards and per-stage progress. Job state lives here, not in Celery results.

Stage transitions are compare-and-set updates (`advance_job`): when several workers finish the last
pieces at once, exactly one of them wins the transition and enqueues the next stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from labeler.errors import NotFoundError
from labeler.store.models import Feature, Job, JobProgress, JobShard, Label, Score, utcnow

STAGES = ("caching", "merging", "explaining", "scoring")
ACTIVE = ("queued", "caching", "merging", "explaining", "scoring")
FINISHED = ("done", "failed", "cancelled")


def create_job(
    session: Session,
    *,
    submission_id: str,
    sae_id: int,
    dataset_id: int,
    config: dict,
    shards: list[tuple[int, int]],
    n_tokens: int,
) -> int:
    job = Job(submission_id=submission_id, sae_id=sae_id, dataset_id=dataset_id, config=config, status="queued")
    session.add(job)
    session.flush()
    session.add_all(
        JobShard(job_id=job.id, shard_index=i, seq_start=a, seq_stop=b, status="pending")
        for i, (a, b) in enumerate(shards)
    )
    totals = {"caching": n_tokens, "merging": 1}
    session.add_all(JobProgress(job_id=job.id, stage=s, done=0, total=totals.get(s, 0)) for s in STAGES)
    session.flush()
    return job.id


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return job


def submission_jobs(session: Session, submission_id: str) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.submission_id == submission_id).order_by(Job.id)))


def advance_job(session: Session, *, job_id: int, from_status: tuple[str, ...] | str, to_status: str) -> bool:
    """Compare-and-set the job status; True only for the one caller that made the change."""
    allowed = (from_status,) if isinstance(from_status, str) else from_status
    values = {"status": to_status, "updated_at": utcnow()}
    if to_status in FINISHED:
        values["finished_at"] = utcnow()
    result = session.execute(update(Job).where(Job.id == job_id, Job.status.in_(allowed)).values(**values))
    return result.rowcount == 1


def fail_job(session: Session, *, job_id: int, error: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(status="failed", error=error[:4000], finished_at=utcnow(), updated_at=utcnow())
    )


def set_progress(session: Session, *, job_id: int, stage: str, done: int, total: int | None = None) -> None:
    """Set (never increment) a stage counter, so a redelivered task cannot count twice."""
    values = {"done": done, "updated_at": utcnow()}
    if total is not None:
        values["total"] = total
    session.execute(update(JobProgress).where(JobProgress.job_id == job_id, JobProgress.stage == stage).values(**values))


def progress(session: Session, job_id: int) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(JobProgress.stage, JobProgress.done, JobProgress.total).where(JobProgress.job_id == job_id)
    )
    return {stage: (done, total) for stage, done, total in rows}


def shards(session: Session, job_id: int) -> list[JobShard]:
    return list(session.scalars(select(JobShard).where(JobShard.job_id == job_id).order_by(JobShard.shard_index)))


def pending_shard_indices(session: Session, job_id: int) -> list[int]:
    return list(
        session.scalars(
            select(JobShard.shard_index).where(JobShard.job_id == job_id, JobShard.status != "done").order_by(JobShard.shard_index)
        )
    )


def save_shard_summary(session: Session, *, job_id: int, shard_index: int, summary: bytes) -> None:
    """Mark a shard done with its summary; a redelivered shard overwrites it with identical bytes."""
    session.execute(
        update(JobShard)
        .where(JobShard.job_id == job_id, JobShard.shard_index == shard_index)
        .values(status="done", summary=summary, updated_at=utcnow())
    )


def shard_summaries(session: Session, job_id: int) -> list[bytes]:
    return list(
        session.scalars(
            select(JobShard.summary).where(JobShard.job_id == job_id, JobShard.status == "done").order_by(JobShard.shard_index)
        )
    )


def count_done_shards(session: Session, job_id: int) -> tuple[int, int]:
    done = session.scalar(select(func.count()).where(JobShard.job_id == job_id, JobShard.status == "done"))
    total = session.scalar(select(func.count()).where(JobShard.job_id == job_id))
    return done or 0, total or 0


def job_feature_indices(session: Session, *, job_id: int, label_state: str | None = None, live_only: bool = True) -> list[int]:
    query = select(Feature.feature_index).where(Feature.job_id == job_id)
    if live_only:
        query = query.where(Feature.is_dead.is_(False))
    if label_state is not None:
        query = query.where(Feature.label_state == label_state)
    return list(session.scalars(query.order_by(Feature.feature_index)))


def count_job_features(session: Session, *, job_id: int, label_state: str | None = None) -> int:
    """Live features of the job (in one label state): counted in SQL, for progress while a batch runs."""
    query = select(func.count()).select_from(Feature).where(Feature.job_id == job_id, Feature.is_dead.is_(False))
    if label_state is not None:
        query = query.where(Feature.label_state == label_state)
    return session.scalar(query) or 0


def count_scored_features(session: Session, *, job_id: int) -> int:
    """Live features of the job that have at least one score on one of their labels."""
    scored = (
        select(func.count(func.distinct(Feature.id)))
        .select_from(Feature)
        .join(Label, Label.feature_id == Feature.id)
        .join(Score, Score.label_id == Label.id)
        .where(Feature.job_id == job_id, Feature.is_dead.is_(False))
    )
    return session.scalar(scored) or 0


def reset_label_state(session: Session, *, job_id: int) -> None:
    """A new job on an SAE relabels its live features."""
    session.execute(
        update(Feature)
        .where(Feature.job_id == job_id, Feature.is_dead.is_(False))
        .values(label_state="pending", label_error=None)
    )


def store_job_cost(session: Session, *, job_id: int, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost_usd)
    )


@dataclass(frozen=True)
class JobView:
    id: int
    submission_id: str
    sae_id: int
    sae_name: str
    status: str
    error: str | None
    progress: dict[str, tuple[int, int]]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    created_at: datetime
    finished_at: datetime | None


def job_views(session: Session, *, job_ids: list[int] | None = None, limit: int = 50) -> list[JobView]:
    from labeler.store.models import SAE

    query = select(Job, SAE.name).join(SAE, SAE.id == Job.sae_id).order_by(Job.id.desc()).limit(limit)
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    views = []
    for job, sae_name in session.execute(query):
        views.append(
            JobView(
                id=job.id,
                submission_id=job.submission_id,
                sae_id=job.sae_id,
                sae_name=sae_name,
                status=job.status,
                error=job.error,
                progress=progress(session, job.id),
                prompt_tokens=job.prompt_tokens,
                completion_tokens=job.completion_tokens,
                cost_usd=job.cost_usd,
                created_at=job.created_at,
                finished_at=job.finished_at,
            )
        )
    return views

