"""The review queue page: open disputes by priority, filterable by SAE, job and reason."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from labeler.store import review as store_review
from labeler.web.deps import CurrentReviewer, ReasonQuery, SessionDep, optional_id
from labeler.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


@router.get("/")
def home(user: CurrentReviewer) -> Response:
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue")
def queue_page(
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    sae_id: str | None = Query(None, max_length=20),
    job_id: str | None = Query(None, max_length=20),
    reason: ReasonQuery = None,
    page: int = Query(1, ge=1, le=100_000),
) -> Response:
    filters = {"sae_id": optional_id(sae_id), "job_id": optional_id(job_id)}
    reason = reason or None
    items = store_review.list_review_queue(
        session, **filters, reason=reason, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    total = store_review.count_review_queue(session, **filters, reason=reason)
    context = {
        "items": items,
        "total": total,
        "page": page,
        "n_pages": max(1, -(-total // PAGE_SIZE)),
        "reason_counts": store_review.review_reason_counts(session, sae_id=filters["sae_id"]),
        "choices": store_review.queue_filters(session),
        "selected": {**filters, "reason": reason},
    }
    return render(request, "queue.html", context)
