"""Fixtures for the web tests: a migrated PostgreSQL database with seeded data, the app in-process
(TestClient), the app behind a real uvicorn server on loopback, and Debian's Chromium via Playwright."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from labeler.settings import get_settings, reset_settings
from labeler.store.db import make_engine, upgrade
from labeler.web.app import create_app
from web_helpers import CHROMIUM, CHROMIUM_ARGS, PG_ADMIN_DSN, pg_url
from web_seed import Seeded, seed


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """One migrated PostgreSQL database per test session, copied for each test.

    `CREATE DATABASE ... TEMPLATE` copies files (tens of milliseconds); running the Alembic migrations
    for every test took seconds each on the shared CI cores.
    """
    name = f"labeler_webtpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(pg_url(name))  # Alembic's engine uses NullPool: no connection stays open on the template
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def web_db(migrated_template, monkeypatch) -> Iterator[str]:
    """A fresh migrated PostgreSQL database that the app, labeler.jobs and the test all use; dropped after."""
    name = f"labeler_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    url = pg_url(name)
    monkeypatch.setenv("LABELER_DATABASE_URL", url)
    monkeypatch.setenv("LABELER_SECRET_KEY", "test-secret-key-for-signing-sessions-0123456789")
    reset_settings()
    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_session(web_db) -> Iterator[Session]:
    engine = make_engine(web_db)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def seeded(db_session) -> Seeded:
    return seed(db_session)


@pytest.fixture
def app(web_db) -> FastAPI:
    return create_app(get_settings())


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1", headers={"Accept": "text/html,*/*;q=0.8"}) as c:  # like a browser
        yield c


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread of this process."""
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    host, port = sock.getsockname()
    yield f"http://{host}:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def hostile_seeded(db_session) -> Seeded:
    return seed(db_session, hostile=True)
