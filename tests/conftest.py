"""Shared fixtures: real SQLite files and throwaway PostgreSQL databases, migrated with Alembic."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from labeler.settings import reset_settings
from labeler.store.db import make_engine, upgrade

PG_ADMIN_DSN = os.environ.get("LABELER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pg_url(db_name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{db_name}"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    name = f"labeler_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'labeler.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """A migrated, empty database on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'labeler.db'}"
        upgrade(url)
        yield url
    else:
        pg = request.getfixturevalue("pg_database")
        upgrade(pg)
        yield pg


@pytest.fixture
def session(db_url) -> Iterator[Session]:
    engine = make_engine(db_url)
    with sessionmaker(bind=engine, expire_on_commit=False)() as s:
        yield s
    engine.dispose()


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch) -> Iterator[None]:
    """Every test gets its own data dir and no broker / LLM unless it sets them."""
    monkeypatch.setenv("LABELER_DATA_DIR", str(tmp_path / "data"))
    for var in ("LABELER_DATABASE_URL", "LABELER_BROKER_URL", "LABELER_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def llm_server():
    """The loopback OpenAI-compatible server (tests/llm_server.py) in a thread: call it to start one."""
    from llm_server import LLMTestServer

    started: list[LLMTestServer] = []

    def start(**config) -> LLMTestServer:
        server = LLMTestServer(**config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
