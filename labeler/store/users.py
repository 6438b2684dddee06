"""Rows for web users: reviewers and admins. Hashes come in already computed (see labeler.web.security).

A `UserRecord` carries the password and token hashes for the login check only; API schemas never
include them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from labeler.errors import ConfigError, NotFoundError
from labeler.store.models import User
from labeler.store.upsert import upsert_rows

ROLES = ("reviewer", "admin")


@dataclass(frozen=True)
class UserRecord:
    id: int
    name: str
    role: str
    password_hash: str
    has_api_token: bool
    created_at: datetime


def _record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        name=user.name,
        role=user.role,
        password_hash=user.password_hash,
        has_api_token=user.api_token_hash is not None,
        created_at=user.created_at,
    )


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_user_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise ConfigError("a user name needs 1 to 100 characters")
    return name


def upsert_user(session: Session, *, name: str, role: str, password_hash: str) -> int:
    """Create the user, or set the role and password of an existing one (keyed by name); returns its id."""
    row = {"name": check_user_name(name), "role": check_role(role), "password_hash": password_hash}
    upsert_rows(session, User.__table__, [row], keys=("name",))
    return session.scalar(select(User.id).where(User.name == row["name"]))


def get_user(session: Session, *, user_id: int) -> UserRecord:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return _record(user)


def find_user_by_name(session: Session, *, name: str) -> UserRecord | None:
    user = session.scalar(select(User).where(User.name == name))
    return None if user is None else _record(user)


def find_user_by_token_hash(session: Session, *, token_hash: str) -> UserRecord | None:
    user = session.scalar(select(User).where(User.api_token_hash == token_hash))
    return None if user is None else _record(user)


def set_api_token_hash(session: Session, *, name: str, token_hash: str | None) -> None:
    """Replace the user's API token (None revokes it); the old token stops working at once."""
    result = session.execute(update(User).where(User.name == name).values(api_token_hash=token_hash))
    if result.rowcount != 1:
        raise NotFoundError(f"user {name!r} does not exist; create it with `labeler user add {name}`")


def list_users(session: Session) -> list[UserRecord]:
    return [_record(u) for u in session.scalars(select(User).order_by(User.name))]


def count_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0


def delete_user(session: Session, *, user_id: int) -> None:
    """Delete a user; their review events stay (user_id becomes NULL, user_name keeps who it was)."""
    user = get_user(session, user_id=user_id)
    if user.role == "admin" and count_admins(session) <= 1:
        raise ConfigError("cannot delete the last admin; make another user admin first")
    session.execute(delete(User).where(User.id == user_id))
