"""Label search over HTTP (the SQL view `feature_labels` is the other way in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from labeler.store import review as store_review
from labeler.web.deps import CurrentUser, IdQuery, Limit, Offset, SessionDep
from labeler.web.schemas import LabelHitOut, LabelStatus, OptionalText

router = APIRouter(tags=["labels"])


@router.get("/labels", response_model=list[LabelHitOut])
def search_labels(
    user: CurrentUser,
    session: SessionDep,
    q: Annotated[OptionalText, Query(max_length=200, description="Case-insensitive substring of the label text.")] = None,
    sae_id: IdQuery = None,
    status: LabelStatus | None = None,
    source: Annotated[OptionalText, Query(max_length=20)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[LabelHitOut]:
    hits = store_review.search_labels(
        session, query=q, sae_id=sae_id, status=status, source=source, limit=limit, offset=offset
    )
    return [LabelHitOut.model_validate(h) for h in hits]
