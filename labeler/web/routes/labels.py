"""Label search page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from labeler.store import review as store_review
from labeler.web.deps import CurrentUser, SessionDep, optional_id
from labeler.web.schemas import OptionalText
from labeler.web.templating import render

router = APIRouter(include_in_schema=False)
STATUSES = ("candidate", "accepted", "rejected", "superseded")
PAGE_SIZE = 100


@router.get("/labels")
def labels_page(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[OptionalText, Query(max_length=200)] = None,
    sae_id: str | None = Query(None, max_length=20),
    status: str | None = Query(None, max_length=20),
) -> Response:
    sae = optional_id(sae_id)
    status = status if status in STATUSES else None
    hits = store_review.search_labels(session, query=q or None, sae_id=sae, status=status, limit=PAGE_SIZE)
    context = {
        "hits": hits,
        "q": q or "",
        "saes": store_review.sae_choices(session),
        "statuses": STATUSES,
        "selected": {"sae_id": sae, "status": status},
        "page_size": PAGE_SIZE,
    }
    return render(request, "labels.html", context)
