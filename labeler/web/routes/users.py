"""User management (admins) and each user's own API token."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from labeler.errors import ConfigError
from labeler.store import users as store_users
from labeler.web.deps import CurrentAdmin, CurrentUser, IdPath, SessionDep
from labeler.web.schemas import UserCreate
from labeler.web.security import hash_api_token, hash_password, new_api_token
from labeler.web.templating import flash, render

router = APIRouter(include_in_schema=False)


@router.get("/users")
def users_page(request: Request, admin: CurrentAdmin, session: SessionDep) -> Response:
    return render(request, "users.html", {"users": store_users.list_users(session)})


@router.post("/users")
def create_user(
    request: Request,
    admin: CurrentAdmin,
    session: SessionDep,
    name: str = Form(max_length=100),
    password: str = Form(max_length=200),
    role: str = Form(max_length=20),
) -> Response:
    try:
        body = UserCreate(name=name.strip(), password=password, role=role)  # same rules as the API
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"cannot save this user: {problems}") from exc
    store_users.upsert_user(session, name=body.name, role=body.role, password_hash=hash_password(body.password))
    session.commit()
    flash(request, f"User {body.name} saved as {body.role}.")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/delete")
def delete_user(user_id: IdPath, request: Request, admin: CurrentAdmin, session: SessionDep) -> Response:
    store_users.delete_user(session, user_id=user_id)
    session.commit()
    flash(request, "User deleted; their review history stays.")
    return RedirectResponse("/users", status_code=303)


@router.get("/account")
def account_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    record = store_users.get_user(session, user_id=user.id)
    return render(request, "account.html", {"account": record, "new_token": None})


@router.post("/account/token")
def new_token(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """A new API token for the signed-in user, shown on this page once; the previous one stops working."""
    token = new_api_token()
    store_users.set_api_token_hash(session, name=user.name, token_hash=hash_api_token(token))
    session.commit()
    record = store_users.get_user(session, user_id=user.id)
    return render(request, "account.html", {"account": record, "new_token": token})
