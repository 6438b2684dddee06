"""Users over HTTP: who am I (anyone), list / create / delete (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from labeler.store import users as store_users
from labeler.web.deps import CurrentAdmin, CurrentUser, IdPath, SessionDep
from labeler.web.schemas import UserCreate, UserPublic
from labeler.web.security import hash_password

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser, session: SessionDep) -> UserPublic:
    return UserPublic.model_validate(store_users.get_user(session, user_id=user.id))


@router.get("", response_model=list[UserPublic])
def list_users(admin: CurrentAdmin, session: SessionDep) -> list[UserPublic]:
    return [UserPublic.model_validate(u) for u in store_users.list_users(session)]


@router.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, admin: CurrentAdmin, session: SessionDep) -> UserPublic:
    """Create a user, or reset the role and password of an existing one with that name."""
    user_id = store_users.upsert_user(session, name=body.name, role=body.role, password_hash=hash_password(body.password))
    session.commit()
    return UserPublic.model_validate(store_users.get_user(session, user_id=user_id))


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: IdPath, admin: CurrentAdmin, session: SessionDep) -> Response:
    store_users.delete_user(session, user_id=user_id)
    session.commit()
    return Response(status_code=204)
