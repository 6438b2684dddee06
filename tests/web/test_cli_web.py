"""`labeler user ...` and `labeler serve`, on the embedded SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from labeler.cli import app as cli
from labeler.cli.web import check_serve_settings
from labeler.errors import ConfigError
from labeler.store.db import session_scope
from labeler.store.users import find_user_by_name
from labeler.web.app import create_app
from labeler.web.security import verify_password

runner = CliRunner()


def invoke(*args: str, password: str | None = None):
    env = {"LABELER_USER_PASSWORD": password} if password else {}
    return runner.invoke(cli, list(args), env=env)


def test_user_add_token_list_delete():
    added = invoke("user", "add", "ada", "--role", "admin", password="ada-password-1")
    assert added.exit_code == 0, added.output
    with session_scope() as session:
        ada = find_user_by_name(session, name="ada")
    assert ada.role == "admin" and verify_password("ada-password-1", ada.password_hash)

    token = invoke("user", "token", "ada").output.strip()
    assert token.startswith("lbl_")
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as client:
        me = client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["name"] == "ada"

    assert invoke("user", "add", "rita", password="rita-password-1").exit_code == 0
    listed = invoke("user", "list").output
    assert "ada" in listed and "rita" in listed and "reviewer" in listed and "scrypt" not in listed
    assert invoke("user", "delete", "rita").exit_code == 0
    assert "rita" not in invoke("user", "list").output


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("user", "add", "bob", "--role", "boss"), "bob-password-1", "role 'boss'"),
        (("user", "add", "bob"), "short", "at least 8"),
        (("user", "token", "nobody"), None, "does not exist"),
        (("user", "delete", "nobody"), None, "no user named"),
    ],
)
def test_user_commands_refuse_clearly(args, password, message):
    result = invoke(*args, password=password)
    assert result.exit_code == 2 and message in result.output


def test_serve_refuses_a_public_interface_with_the_default_secret():
    with pytest.raises(ConfigError, match="LABELER_SECRET_KEY"):
        check_serve_settings("0.0.0.0", "dev-insecure-change-me")
    check_serve_settings("127.0.0.1", "dev-insecure-change-me")
    check_serve_settings("0.0.0.0", "a-long-random-secret")
    result = invoke("serve", "--host", "0.0.0.0")
    assert result.exit_code == 2 and "default secret key" in result.output


def test_labeler_serve_answers_on_loopback(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LABELER_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "labeler", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "labeler serve did not answer"
                time.sleep(0.25)
        assert response.json() == {"status": "ok"}
        login = httpx.get(f"http://127.0.0.1:{port}/queue", follow_redirects=False, headers={"Accept": "text/html"})
        assert login.status_code == 303 and login.headers["location"].startswith("/login")
    finally:
        process.terminate()
        process.wait(timeout=20)
