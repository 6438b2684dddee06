"""The feature page's decision forms: accept, edit and accept, reject and flag, relabel, note.

Each posts here, runs one store action in one transaction, and redirects back (post/redirect/get) with
a one-line message.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from labeler import jobs
from labeler.store import review as store_review
from labeler.store.review import MAX_LABEL_CHARS, MAX_NOTE_CHARS
from labeler.web.deps import CurrentReviewer, IdPath, SessionDep
from labeler.web.schemas import MAX_ID, OptionalText, Text
from labeler.web.templating import flash

router = APIRouter(include_in_schema=False)


def _back(request: Request, session, feature_id: int, message: str) -> Response:
    session.commit()
    flash(request, message)
    return RedirectResponse(f"/features/{feature_id}", status_code=303)


@router.post("/features/{feature_id}/accept")
def accept(
    feature_id: IdPath,
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    label_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    note: Annotated[OptionalText, Form(max_length=MAX_NOTE_CHARS)] = None,
) -> Response:
    store_review.accept_label(
        session, feature_id=feature_id, label_id=label_id, user_id=user.id, user_name=user.name, note=note
    )
    return _back(request, session, feature_id, "Label accepted.")


@router.post("/features/{feature_id}/edit")
def edit(
    feature_id: IdPath,
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    text: Annotated[Text, Form(max_length=MAX_LABEL_CHARS)],
    note: Annotated[OptionalText, Form(max_length=MAX_NOTE_CHARS)] = None,
) -> Response:
    store_review.edit_and_accept(
        session, feature_id=feature_id, text=text, user_id=user.id, user_name=user.name, note=note
    )
    return _back(request, session, feature_id, "Your label was saved and accepted.")


@router.post("/features/{feature_id}/reject")
def reject(
    feature_id: IdPath,
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    note: Annotated[OptionalText, Form(max_length=MAX_NOTE_CHARS)] = None,
) -> Response:
    store_review.reject_and_flag(session, feature_id=feature_id, user_id=user.id, user_name=user.name, note=note)
    return _back(request, session, feature_id, "All candidates rejected; the feature is flagged.")


@router.post("/features/{feature_id}/relabel")
def relabel(
    feature_id: IdPath,
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    explain_model: Annotated[OptionalText, Form(max_length=200)] = None,
    note: Annotated[OptionalText, Form(max_length=MAX_NOTE_CHARS)] = None,
) -> Response:
    store_review.feature_sae_index(session, feature_id=feature_id)  # 404 before anything is queued
    session.rollback()
    model = (explain_model or "").strip() or None
    jobs.request_relabel(feature_id=feature_id, explain_model=model)
    store_review.record_relabel(
        session, feature_id=feature_id, user_id=user.id, user_name=user.name, explain_model=model, note=note
    )
    return _back(request, session, feature_id, f"Relabel requested{f' with {model}' if model else ''}.")


@router.post("/features/{feature_id}/note")
def note(
    feature_id: IdPath,
    request: Request,
    user: CurrentReviewer,
    session: SessionDep,
    note: Annotated[Text, Form(max_length=MAX_NOTE_CHARS)],
) -> Response:
    store_review.add_note(session, feature_id=feature_id, user_id=user.id, user_name=user.name, note=note)
    return _back(request, session, feature_id, "Note added.")
