"""Migrations build the same schema on SQLite and PostgreSQL, round-trip, and match the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from labeler.store.db import downgrade, make_engine, upgrade
from labeler.store.models import Base


def _schema(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names() if t != "alembic_version"}
    finally:
        engine.dispose()


def _drift(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_both_dialects(sqlite_url, pg_database):
    for url in (sqlite_url, pg_database):
        upgrade(url)
        downgrade(url, "base")
        assert _schema(url) == {}
        upgrade(url)
    assert _schema(sqlite_url) == _schema(pg_database)
    assert set(_schema(sqlite_url)) >= {t for t in Base.metadata.tables}


def test_models_and_migrations_do_not_drift(sqlite_url, pg_database):
    for url in (sqlite_url, pg_database):
        upgrade(url)
        assert _drift(url) == [], f"models differ from migrations on {url.split(':')[0]}"
