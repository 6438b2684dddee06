"""Jobs page: progress per stage, LLM cost so far; admins can cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from labeler import jobs
from labeler.store.jobs import ACTIVE, STAGES
from labeler.web.deps import CurrentAdmin, CurrentUser, IdPath, SessionDep
from labeler.web.templating import flash, render

router = APIRouter(include_in_schema=False)


@router.get("/jobs")
def jobs_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    views = jobs.job_views(session)
    context = {
        "jobs": views,
        "stages": STAGES,
        "active": ACTIVE,
        "any_active": any(v.status in ACTIVE for v in views),
        "total_cost_usd": sum(v.cost_usd for v in views),
    }
    return render(request, "jobs.html", context)


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: IdPath, request: Request, admin: CurrentAdmin) -> Response:
    jobs.cancel_job(job_id)
    flash(request, f"Job {job_id} cancelled.")
    return RedirectResponse("/jobs", status_code=303)
