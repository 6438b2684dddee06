"""Idempotent bulk upserts on natural keys, the same on SQLite and PostgreSQL.

Both dialects speak `INSERT ... ON CONFLICT (keys) DO UPDATE`, so one function serves every table:
running it twice with the same rows leaves the table exactly as after the first run.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Iterable, Sequence

from sqlalchemy import Table, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# SQLite allows 32766 bound parameters per statement; PostgreSQL 65535. Chunks stay under both.
MAX_PARAMS_PER_STATEMENT = 30000
# Rows handed to the driver per executemany call: bounds the memory of one call (a 100k-row call of
# example windows holds ~40 MB of parameters); SQLAlchemy batches each call into multi-row VALUES itself.
ROWS_PER_EXECUTEMANY = 10000


def _insert_for(session: Session):
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"upserts support sqlite and postgresql, not {name}")


def _last_per_key(rows: Sequence[dict[str, Any]], keys: Sequence[str], *, keep_first: bool) -> list[dict[str, Any]]:
    """One row per natural key, as if the rows had been upserted one after another.

    PostgreSQL refuses one statement that touches the same row twice ("ON CONFLICT DO UPDATE command
    cannot affect row a second time"): a candidate sampled twice would otherwise fail the whole batch.
    """
    key_of = itemgetter(*keys)
    if keep_first:
        unique: dict[Any, dict[str, Any]] = {}
        for row in rows:
            unique.setdefault(key_of(row), row)
    else:
        unique = {key_of(row): row for row in rows}
    return list(unique.values()) if len(unique) < len(rows) else list(rows)


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    update: Iterable[str] | None = None,
) -> None:
    """Insert rows; where `keys` already exist, overwrite the `update` columns (default: all non-key ones).

    `update=()` means insert-or-ignore: existing rows are left untouched. Rows repeating a key collapse to
    the last one (the first one for insert-or-ignore), exactly as separate upserts in that order would.

    One statement is compiled and run with executemany: compiling a fresh multi-row VALUES statement per
    chunk cost ~100 times more CPU than the database's own work (bench/store_insert.py).
    """
    if not rows:
        return
    insert = _insert_for(session)
    columns = list(rows[0].keys())
    update_cols = [c for c in (columns if update is None else update) if c not in keys]
    rows = _last_per_key(rows, keys, keep_first=not update_cols)
    stmt = insert(table)
    if update_cols:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    for start in range(0, len(rows), ROWS_PER_EXECUTEMANY):
        session.execute(stmt, list(rows[start : start + ROWS_PER_EXECUTEMANY]))


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
