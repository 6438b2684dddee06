"""Review queue and decisions over HTTP; the same store functions as the UI's forms."""

from __future__ import annotations

from fastapi import APIRouter

from labeler import jobs
from labeler.store import review as store_review
from labeler.web.deps import CurrentReviewer, IdPath, IdQuery, Limit, Offset, ReasonQuery, SessionDep
from labeler.web.schemas import (
    AcceptIn,
    EditIn,
    NoteIn,
    QueueItemOut,
    QueueOut,
    RejectIn,
    RelabelIn,
    ReviewOutcomeOut,
)

router = APIRouter(tags=["review"])


@router.get("/review/queue", response_model=QueueOut)
def review_queue(
    user: CurrentReviewer,
    session: SessionDep,
    sae_id: IdQuery = None,
    job_id: IdQuery = None,
    reason: ReasonQuery = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> QueueOut:
    """Open disputes, highest priority first; `reason_counts` covers the SAE filter only (every reason listed)."""
    filters = {"sae_id": sae_id, "job_id": job_id}
    items = store_review.list_review_queue(session, **filters, reason=reason, limit=limit, offset=offset)
    return QueueOut(
        total=store_review.count_review_queue(session, **filters, reason=reason),
        reason_counts=store_review.review_reason_counts(session, sae_id=sae_id),
        items=[QueueItemOut.model_validate(i) for i in items],
    )


def _done(session, outcome: store_review.ReviewOutcome) -> ReviewOutcomeOut:
    session.commit()
    return ReviewOutcomeOut.model_validate(outcome)


@router.post("/features/{feature_id}/accept", response_model=ReviewOutcomeOut)
def accept(feature_id: IdPath, body: AcceptIn, user: CurrentReviewer, session: SessionDep) -> ReviewOutcomeOut:
    """Accept one candidate: it becomes the feature's label, the others are superseded."""
    outcome = store_review.accept_label(
        session, feature_id=feature_id, label_id=body.label_id, user_id=user.id, user_name=user.name, note=body.note
    )
    return _done(session, outcome)


@router.post("/features/{feature_id}/edit", response_model=ReviewOutcomeOut)
def edit(feature_id: IdPath, body: EditIn, user: CurrentReviewer, session: SessionDep) -> ReviewOutcomeOut:
    """Write a label by hand (source human) and accept it."""
    outcome = store_review.edit_and_accept(
        session, feature_id=feature_id, text=body.text, user_id=user.id, user_name=user.name, note=body.note
    )
    return _done(session, outcome)


@router.post("/features/{feature_id}/reject", response_model=ReviewOutcomeOut)
def reject(feature_id: IdPath, body: RejectIn, user: CurrentReviewer, session: SessionDep) -> ReviewOutcomeOut:
    """Reject every candidate and flag the feature; its dispute stays open."""
    outcome = store_review.reject_and_flag(
        session, feature_id=feature_id, user_id=user.id, user_name=user.name, note=body.note
    )
    return _done(session, outcome)


@router.post("/features/{feature_id}/relabel", response_model=ReviewOutcomeOut)
def relabel(feature_id: IdPath, body: RelabelIn, user: CurrentReviewer, session: SessionDep) -> ReviewOutcomeOut:
    """Ask for new candidates, optionally from another explainer model."""
    store_review.feature_sae_index(session, feature_id=feature_id)  # 404 before anything is queued
    session.rollback()
    jobs.request_relabel(feature_id=feature_id, explain_model=body.explain_model or None)
    outcome = store_review.record_relabel(
        session,
        feature_id=feature_id,
        user_id=user.id,
        user_name=user.name,
        explain_model=body.explain_model or None,
        note=body.note,
    )
    return _done(session, outcome)


@router.post("/features/{feature_id}/notes", response_model=ReviewOutcomeOut)
def note(feature_id: IdPath, body: NoteIn, user: CurrentReviewer, session: SessionDep) -> ReviewOutcomeOut:
    outcome = store_review.add_note(session, feature_id=feature_id, user_id=user.id, user_name=user.name, note=body.note)
    return _done(session, outcome)
