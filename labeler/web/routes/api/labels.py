"""Label search over HTTP (the SQL view `feature_labels` is the other way in)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from labeler.store import review as store_review
from labeler.web.deps import CurrentUser, SessionDep
from labeler.web.schemas import LabelHitOut, LabelStatus

router = APIRouter(tags=["labels"])


@router.get("/labels", response_model=list[LabelHitOut])
def search_labels(
    user: CurrentUser,
    session: SessionDep,
    q: str | None = Query(None, max_length=200, description="Case-insensitive substring of the label text."),
    sae_id: int | None = None,
    status: LabelStatus | None = None,
    source: str | None = Query(None, max_length=20),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> list[LabelHitOut]:
    hits = store_review.search_labels(
        session, query=q, sae_id=sae_id, status=status, source=source, limit=limit, offset=offset
    )
    return [LabelHitOut.model_validate(h) for h in hits]
