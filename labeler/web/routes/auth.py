"""Sign in and out. The login form is the one page that needs no session (it still needs a CSRF token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from labeler.store import users as store_users
from labeler.web.deps import SessionDep, csrf_token_for
from labeler.web.security import DUMMY_PASSWORD_HASH, new_csrf_token, session_tag, verify_password
from labeler.web.schemas import OptionalText, Text
from labeler.web.templating import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only paths on this site: `//evil.example` or `https://...` would send the user elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    return target


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[Text, Form(max_length=100)],
    password: Annotated[Text, Form(max_length=200)],
    next: Annotated[OptionalText, Form(max_length=2000)] = None,
) -> Response:
    throttle = request.app.state.login_throttle
    keys = (f"name:{username.strip().lower()}", f"address:{request.client.host if request.client else '?'}")
    wait_s = throttle.retry_after_s(keys)
    if wait_s is not None:
        context = {"next": safe_next(next), "error": f"too many failed sign-ins; try again in {wait_s} s"}
        response = render(request, "login.html", context, status_code=429)
        response.headers["Retry-After"] = str(wait_s)
        return response
    user = store_users.find_user_by_name(session, name=username.strip())
    stored = user.password_hash if user is not None else DUMMY_PASSWORD_HASH
    if not verify_password(password, stored) or user is None:
        throttle.failed(keys)
        context = {"next": safe_next(next), "error": "name or password is wrong"}
        return render(request, "login.html", context, status_code=401)
    request.session.clear()
    request.session.update(
        user_id=user.id,
        tag=session_tag(request.app.state.settings.secret_key, user.password_hash),
        csrf=new_csrf_token(),  # a fresh token per sign-in: one seen before login is worth nothing after
    )
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    csrf_token_for(request)
    return RedirectResponse("/login", status_code=303)
