"""The analysts' role reads every table and view and can change nothing, checked with SET ROLE in a real session."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import psycopg
import pytest
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from labeler.cli import app
from labeler.errors import ConfigError
from labeler.store.db import make_engine, upgrade
from labeler.store.labels import upsert_labels
from labeler.store.features import upsert_features
from labeler.store.readonly import grant_readonly
from labeler.store.sources import upsert_sae
from labeler.types import FeatureStats, LabelCandidate

PG_ADMIN_DSN = os.environ.get("LABELER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
VIEWS = ("feature_labels", "label_scores", "disputed_features", "example_tokens")


def _driver_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def migrated_pg() -> Iterator[str]:
    """One migrated PostgreSQL database with one labelled feature, shared by this module (roles differ)."""
    name = f"labeler_test_readonly_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    try:
        upgrade(url)
        engine = make_engine(url)
        with sessionmaker(bind=engine)() as session:
            sae = upsert_sae(session, name="s", source="local", model_name="m", hook_name="h", d_in=4, d_sae=8,
                             architecture="standard", checksum="c" * 64)
            ids = upsert_features(session, sae_id=sae, stats=[FeatureStats(0, 100, 5, 1.0, 3.0, (), ())])
            upsert_labels(session, feature_ids=ids, candidates=[LabelCandidate(0, "commas", "llm", "default")])
            session.commit()
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def role(migrated_pg) -> Iterator[str]:
    """A unique role name; the role and its privileges are dropped afterwards (roles are cluster-wide)."""
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(_driver_dsn(migrated_pg), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


def _grant(url: str, **kwargs):
    engine = make_engine(url)
    try:
        with sessionmaker(bind=engine)() as session:
            result = grant_readonly(session, **kwargs)
            session.commit()
        return result
    finally:
        engine.dispose()


def _as_role(url: str, role: str, statement: str):
    """Run one statement as `role` (SET ROLE inside a superuser session); returns rows or raises."""
    with psycopg.connect(_driver_dsn(url), autocommit=True) as conn:
        conn.execute(f'SET ROLE "{role}"')
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else None


def test_readonly_role_selects_every_view_and_table(migrated_pg, role):
    result = _grant(migrated_pg, role=role)
    assert result.created and not result.login and result.tables_owner == "postgres"
    for view in VIEWS:
        assert _as_role(migrated_pg, role, f"SELECT * FROM {view}") is not None
    assert _as_role(migrated_pg, role, "SELECT label FROM feature_labels") == [("commas",)]
    assert _as_role(migrated_pg, role, "SELECT count(*) FROM labels") == [(1,)]


WRITES = (
    "INSERT INTO saes (name, source, model_name, hook_name, d_in, d_sae, architecture, checksum, created_at) "
    "VALUES ('x', 'local', 'm', 'h2', 1, 1, 'a', 'd', now())",
    "UPDATE labels SET text = 'vandalised'",
    "DELETE FROM labels",
    "TRUNCATE scores",
    "CREATE TABLE scratch (x int)",
    "CREATE VIEW my_view AS SELECT 1 AS x",
    "CREATE SCHEMA analyst_scratch",
    "DROP VIEW feature_labels",
    "ALTER TABLE labels ADD COLUMN y int",
    "CREATE INDEX ix_mine ON labels (model)",
)


def test_readonly_role_cannot_change_anything(migrated_pg, role):
    _grant(migrated_pg, role=role)
    for statement in WRITES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as_role(migrated_pg, role, statement)
    with psycopg.connect(_driver_dsn(migrated_pg)) as conn:
        assert conn.execute("SELECT text FROM labels").fetchall() == [("commas",)]


def test_tables_created_later_are_readable_without_granting_again(migrated_pg, role):
    _grant(migrated_pg, role=role)
    with psycopg.connect(_driver_dsn(migrated_pg), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE later_{role} (x int)")
        conn.execute(f"INSERT INTO later_{role} VALUES (7)")
    assert _as_role(migrated_pg, role, f"SELECT x FROM later_{role}") == [(7,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_role(migrated_pg, role, f"INSERT INTO later_{role} VALUES (8)")


def test_grant_is_idempotent_and_takes_back_write_privileges(migrated_pg, role):
    _grant(migrated_pg, role=role)
    with psycopg.connect(_driver_dsn(migrated_pg), autocommit=True) as conn:
        conn.execute(f'GRANT INSERT, DELETE ON labels TO "{role}"')
    again = _grant(migrated_pg, role=role)
    assert not again.created
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_role(migrated_pg, role, "DELETE FROM labels")


def test_login_role_with_password_starts_read_only_sessions(migrated_pg, role):
    result = _grant(migrated_pg, role=role, password="s3cr'et%")
    assert result.login
    with psycopg.connect(_driver_dsn(migrated_pg)) as conn:
        can_login, has_password = conn.execute(
            "SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", (role,)
        ).fetchone()
        settings = conn.execute(
            "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s",
            (role,),
        ).fetchone()[0]
    assert can_login and has_password
    assert "default_transaction_read_only=on" in settings
    database = migrated_pg.rsplit("/", 1)[1]
    with psycopg.connect(f"postgresql://{role}@127.0.0.1:5432/{database}") as conn:  # trust auth here
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SELECT count(*) FROM feature_labels").fetchone() == (1,)


def test_rejects_odd_role_names_and_sqlite(migrated_pg, sqlite_url):
    with pytest.raises(ConfigError, match="plain identifier"):
        _grant(migrated_pg, role='x"; DROP TABLE labels; --')
    upgrade(sqlite_url)
    with pytest.raises(ConfigError, match="only on PostgreSQL"):
        _grant(sqlite_url, role="analyst")


def test_cli_grant_readonly(migrated_pg, role, monkeypatch):
    monkeypatch.setenv("LABELER_DATABASE_URL", migrated_pg)
    from labeler.settings import reset_settings

    reset_settings()
    result = CliRunner().invoke(app, ["db", "grant-readonly", role])
    assert result.exit_code == 0, result.output
    assert f"role {role} created (NOLOGIN)" in " ".join(result.output.split())
    assert _as_role(migrated_pg, role, "SELECT count(*) FROM label_scores") == [(0,)]
