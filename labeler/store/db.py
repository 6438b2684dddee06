"""Engines, sessions and migrations. The embedded SQLite default is migrated on first use."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from labeler.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def _enable_sqlite_foreign_keys(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def json_dumps(value) -> str:
    """JSON columns, both dialects. NaN and infinities become null (PostgreSQL's JSON refuses them, and a
    score's details may hold the correlation of a constant); numpy values are written as numbers. orjson:
    a batch of LLM answers with logprobs is several MB of JSON, and the stdlib encoder was the slowest
    step of writing it."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str) -> Engine:
    json_options = {"json_serializer": json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **json_options)
        _enable_sqlite_foreign_keys(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **json_options)


def is_migrated(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version")


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process; SQLite databases are migrated on first use.

    The URL is resolved before the cache: caching on `None` would pin the first configured database
    even after the settings change (as they do between tests).
    """
    return _engine_for(url or get_settings().resolved_database_url)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    engine = make_engine(url)
    if url.startswith("sqlite") and not is_migrated(engine):
        upgrade(url)
    return engine


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error, so no half-written rows remain."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
