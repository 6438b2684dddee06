"""Request dependencies: the SQL session, the signed-in user, role checks and the CSRF check.

Two ways in: a browser session (signed cookie, set by the login form) or an API bearer token
(`Authorization: Bearer lbl_...`, from `labeler user token NAME`). CSRF tokens guard the first only:
a cross-site page can make a browser send its cookie, but it cannot make it send an Authorization header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Iterator

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from labeler.errors import NotAuthenticatedError, NotFoundError, PermissionDeniedError
from labeler.store import users as store_users
from labeler.web.schemas import MAX_ID, OptionalText
from labeler.web.security import hash_api_token, new_csrf_token, session_tag, tokens_match

# Path and query parameters bounded like the SQL columns they are compared with.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IndexPath = Annotated[int, Path(ge=0, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
ReasonQuery = Annotated[OptionalText, Query(max_length=50)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10**9)]



def optional_id(value: str | None) -> int | None:
    """A filter select's value: "" (or anything not an id) means "all"."""
    if value is None or not value.strip().isdigit():
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Principal:
    """Who is asking: enough to authorise and to audit, and no secrets."""

    id: int
    name: str
    role: str
    via_token: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def get_session(request: Request) -> Iterator[Session]:
    """One SQL session per request; routes commit explicitly, anything uncommitted is rolled back."""
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticatedError("the Authorization header must be `Bearer <token>`")
    return token.strip()


def _user_from_token(session: Session, token: str) -> Principal:
    user = store_users.find_user_by_token_hash(session, token_hash=hash_api_token(token))
    if user is None:
        raise NotAuthenticatedError("API token not recognised; make a new one with `labeler user token NAME`")
    return Principal(user.id, user.name, user.role, via_token=True)


def _user_from_session(request: Request, session: Session) -> Principal:
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        raise NotAuthenticatedError("sign in first")
    try:
        user = store_users.get_user(session, user_id=user_id)
    except NotFoundError:
        request.session.clear()
        raise NotAuthenticatedError("this account no longer exists; sign in again") from None
    if not tokens_match(session_tag(request.app.state.settings.secret_key, user.password_hash), request.session.get("tag")):
        request.session.clear()
        raise NotAuthenticatedError("the password changed since this session began; sign in again")
    return Principal(user.id, user.name, user.role, via_token=False)


def current_user(request: Request, session: SessionDep) -> Principal:
    token = bearer_token(request)
    user = _user_from_token(session, token) if token is not None else _user_from_session(request, session)
    request.state.user = user
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]
# Reviewers and admins both decide on labels; the alias names what a route needs.
CurrentReviewer = CurrentUser


def current_admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise PermissionDeniedError(f"{user.name} is a {user.role}; only admins manage users and jobs")
    return user


CurrentAdmin = Annotated[Principal, Depends(current_admin)]


def csrf_token_for(request: Request) -> str:
    """The session's CSRF token, created on first use (the login page needs one before any sign-in)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = new_csrf_token()
        request.session["csrf"] = token
    return token


async def verify_csrf(request: Request) -> None:
    """Refuse a state-changing request made with the session cookie unless it carries the session's token.

    Applied to every route of the app. The token comes in the X-CSRF-Token header or the csrf_token form
    field. Bearer-token requests are exempt: the token itself proves the caller chose to send them.
    """
    if request.method in SAFE_METHODS or request.headers.get("authorization") is not None:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(request.session.get("csrf"), given):
        raise PermissionDeniedError("CSRF token missing or wrong; reload the page and try again")
