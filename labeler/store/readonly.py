"""A read-only PostgreSQL role for analysts: SELECT on every table and view, nothing else.

Run as the user that runs the migrations: the default privileges it sets apply to tables and views that
user creates later, so a future migration's tables are readable without granting again. Running it
again is harmless, and it also takes back write privileges an existing role of that name may have had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.orm import Session

from labeler.errors import ConfigError, StoreError

ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
WRITE_PRIVILEGES = "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


@dataclass(frozen=True)
class ReadonlyGrant:
    """What `grant_readonly` did; `public_can_create` warns about PostgreSQL <= 14 defaults."""

    role: str
    created: bool
    login: bool
    database: str
    schema: str
    tables_owner: str
    public_can_create: bool


def _check_role_name(role: str) -> None:
    if not ROLE_NAME.match(role):
        raise ConfigError(
            f"role name {role!r} is not a plain identifier; use letters, digits and _ (e.g. analyst)"
        )


def grant_readonly(
    session: Session, *, role: str, login: bool = False, password: str | None = None, schema: str = "public"
) -> ReadonlyGrant:
    """Create `role` if missing and make it able to read, and only read, the labeler schema.

    The caller commits. `password` implies `login`.
    """
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":
        raise ConfigError(
            f"read-only roles exist only on PostgreSQL; this database is {dialect}. For SQLite, give analysts "
            'a copy of the file or open it read-only: sqlite3 "file:labeler.db?mode=ro"'
        )
    _check_role_name(role)
    login = login or password is not None
    conn = session.connection().connection.driver_connection
    ident = sql.Identifier(role)
    current_user = owner = "?"
    try:
        with conn.cursor() as cur:
            database, current_user = cur.execute("SELECT current_database(), current_user").fetchone()
            if cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
                raise ConfigError(f"schema {schema!r} does not exist in database {database}")
            owner_row = cur.execute(
                "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'alembic_version'", (schema,)
            ).fetchone()
            if owner_row is None:
                raise ConfigError(f"database {database} is not migrated; run `labeler db upgrade` first")
            owner = owner_row[0]
            exists = cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
            if not exists:
                cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
            if login:
                cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(ident))
            if password is not None:
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident))
            schema_ident = sql.Identifier(schema)
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "REVOKE CREATE ON SCHEMA {schema} FROM {role}",
                f"REVOKE {WRITE_PRIVILEGES} ON ALL TABLES IN SCHEMA {{schema}} FROM {{role}}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
            ):
                cur.execute(
                    sql.SQL(statement).format(
                        db=sql.Identifier(database), role=ident, schema=schema_ident, owner=sql.Identifier(owner)
                    )
                )
            public_can_create = cur.execute(
                "SELECT has_schema_privilege(%s, %s, 'CREATE')", (role, schema)
            ).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError(
            f"user {current_user!r} may not create or grant to role {role!r}: {exc.diag.message_primary}. "
            f"Run this as the user that owns the labeler tables ({owner!r}) or as a superuser."
        ) from exc
    return ReadonlyGrant(
        role=role,
        created=not exists,
        login=login,
        database=database,
        schema=schema,
        tables_owner=owner,
        public_can_create=bool(public_can_create),
    )
