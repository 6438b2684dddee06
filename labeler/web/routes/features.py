"""The feature page: examples on full contexts, the pictures, every candidate and score, and "try it"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from labeler import jobs
from labeler.store import review as store_review
from labeler.web.charts import density_gauge, histogram_chart
from labeler.web.contexts import group_examples, try_tokens
from labeler.web.deps import CurrentReviewer, IdPath, IndexPath, SessionDep
from labeler.web.schemas import MAX_TRY_CHARS, Text
from labeler.web.templating import render

router = APIRouter(include_in_schema=False)


def _render_feature(
    request: Request,
    session: Session,
    feature_id: IdPath,
    *,
    try_text: str = "",
    tried_pairs: list[tuple[str, float]] | None = None,
) -> Response:
    detail = store_review.load_feature_detail(session, feature_id=feature_id)
    current = next((lb for lb in detail.labels if lb.is_current), None)
    first_candidate = next((lb for lb in detail.labels if lb.status == "candidate"), None)
    context = {
        "feature": detail,
        "groups": group_examples(detail.examples, detail.max_activation),
        "histogram": histogram_chart(detail.histogram_edges, detail.histogram_counts),
        "gauge": density_gauge(detail.density),
        "edit_text": (current or first_candidate).text if (current or first_candidate) else "",
        "try_text": try_text,
        "tried": None if tried_pairs is None else try_tokens(tried_pairs, detail.max_activation),
    }
    return render(request, "feature.html", context)


@router.get("/features/{feature_id}")
def feature_page(feature_id: IdPath, request: Request, user: CurrentReviewer, session: SessionDep) -> Response:
    return _render_feature(request, session, feature_id)


@router.get("/saes/{sae_id}/features/{feature_index}")
def feature_by_index(sae_id: IdPath, feature_index: IndexPath, user: CurrentReviewer, session: SessionDep) -> Response:
    feature_id = store_review.find_feature_id(session, sae_id=sae_id, feature_index=feature_index)
    return RedirectResponse(f"/features/{feature_id}", status_code=303)


@router.post("/features/{feature_id}/try")
def try_it(
    feature_id: IdPath,
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    text: Annotated[Text, Form(min_length=1, max_length=MAX_TRY_CHARS)],
) -> Response:
    sae_id, feature_index = store_review.feature_sae_index(session, feature_id=feature_id)
    session.rollback()  # no read transaction held open across a model run
    pairs = jobs.try_text(sae_id=sae_id, feature_index=feature_index, text=text)
    return _render_feature(request, session, feature_id, try_text=text, tried_pairs=pairs)
