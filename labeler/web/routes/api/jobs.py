"""Jobs over HTTP: submit (admin), status, cancel (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from labeler import jobs
from labeler.errors import NotFoundError
from labeler.jobs import SubmitRequest
from labeler.store.jobs import JobView
from labeler.web.deps import CurrentAdmin, CurrentUser, IdPath, Limit, SessionDep
from labeler.web.schemas import JobOut, StageProgressOut, SubmissionOut

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_out(view: JobView) -> JobOut:
    return JobOut(
        id=view.id,
        submission_id=view.submission_id,
        sae_id=view.sae_id,
        sae_name=view.sae_name,
        status=view.status,
        error=view.error,
        progress={stage: StageProgressOut(done=d, total=t) for stage, (d, t) in view.progress.items()},
        prompt_tokens=view.prompt_tokens,
        completion_tokens=view.completion_tokens,
        cost_usd=view.cost_usd,
        created_at=view.created_at,
        finished_at=view.finished_at,
    )


def _one_job(session, job_id: int) -> JobOut:
    views = jobs.job_views(session, job_ids=[job_id])
    if not views:
        raise NotFoundError(f"job {job_id} does not exist")
    return job_out(views[0])


@router.post("", response_model=SubmissionOut, status_code=201)
def submit_job(body: SubmitRequest, user: CurrentAdmin) -> SubmissionOut:
    """Validate the sources (model, SAE, hook, dataset) and queue the job; 422 says what is wrong."""
    submission = jobs.submit(body)
    return SubmissionOut(submission_id=submission.submission_id, job_ids=list(submission.job_ids))


@router.get("", response_model=list[JobOut])
def list_jobs(user: CurrentUser, session: SessionDep, limit: Limit = 50) -> list[JobOut]:
    return [job_out(v) for v in jobs.job_views(session)[:limit]]


@router.get("/{job_id}", response_model=JobOut)
def job_status(job_id: IdPath, user: CurrentUser, session: SessionDep) -> JobOut:
    return _one_job(session, job_id)


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: IdPath, user: CurrentAdmin, session: SessionDep) -> JobOut:
    jobs.cancel_job(job_id)
    return _one_job(session, job_id)
