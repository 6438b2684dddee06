"""Idempotent bulk upserts on natural keys, the same on SQLite and PostgreSQL.

Both dialects speak `INSERT ... ON CONFLICT (keys) DO UPDATE`, so one function serves every table:
running it twice with the same rows leaves the table exactly as after the first run.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from sqlalchemy import Table, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# SQLite allows 32766 bound parameters per statement; PostgreSQL 65535. Chunks stay under both.
MAX_PARAMS_PER_STATEMENT = 30000


def _insert_for(session: Session):
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"upserts support sqlite and postgresql, not {name}")


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Iterable[str] | None = None,
) -> None:
    """Insert rows; where `keys` already exist, overwrite the `update` columns (default: all non-key ones).

    `update=()` means insert-or-ignore: existing rows are left untouched.
    """
    if not rows:
        return
    insert = _insert_for(session)
    columns = list(rows[0].keys())
    update_cols = [c for c in (columns if update is None else update) if c not in keys]
    per_chunk = max(1, MAX_PARAMS_PER_STATEMENT // max(1, len(columns)))
    for start in range(0, len(rows), per_chunk):
        stmt = insert(table).values(list(rows[start : start + per_chunk]))
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        session.execute(stmt)


def ids_by_key(session: Session, table: Table, keys: Sequence[str], values: Sequence[tuple]) -> dict[tuple, int]:
    """Map natural-key tuples to primary keys, in chunks (used right after an upsert)."""
    found: dict[tuple, int] = {}
    key_cols = [table.c[k] for k in keys]
    per_chunk = max(1, MAX_PARAMS_PER_STATEMENT // max(1, len(keys)))
    unique_values = list(dict.fromkeys(values))
    for start in range(0, len(unique_values), per_chunk):
        chunk = unique_values[start : start + per_chunk]
        where = tuple_(*key_cols).in_(chunk) if len(keys) > 1 else key_cols[0].in_([v[0] for v in chunk])
        for row in session.execute(select(table.c.id, *key_cols).where(where)):
            found[tuple(row[1:])] = row[0]
    return found
