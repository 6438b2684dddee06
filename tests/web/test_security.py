"""Access control, CSRF, roles, headers and secrets, checked over every route the app has."""

from __future__ import annotations

import re
import socket
import uuid

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from web_helpers import csrf_of, sign_in
from labeler.store.models import Label, ReviewEvent
from web_seed import ADMIN, REVIEWER

# The only doors open without signing in: the login form, signing out, and the liveness probe.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/health")}


def every_route(app) -> list[tuple[str, str]]:
    """(method, path) of every endpoint, however deeply its router is included."""
    found = set()
    for context in iter_route_contexts(app.routes):
        for method in getattr(context, "methods", None) or ():
            if method != "HEAD":
                found.add((method, context.path))
    return sorted(found)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_route_list_covers_pages_and_api(app):
    routes = every_route(app)
    assert len(routes) > 30
    for expected in [("GET", "/queue"), ("POST", "/features/{feature_id}/edit"), ("GET", "/openapi.json"),
                     ("POST", "/api/jobs"), ("DELETE", "/api/users/{user_id}")]:
        assert expected in routes


def test_every_route_refuses_anonymous_callers(app, client, seeded):
    csrf = csrf_of(client.get("/login").text)  # an anonymous session with a valid CSRF token
    checked = 0
    for method, path in every_route(app):
        if (method, path) in PUBLIC:
            continue
        url = concrete(path)
        headers = {"X-CSRF-Token": csrf, "Accept": "text/html"}
        response = client.request(method, url, headers=headers, follow_redirects=False)
        if path.startswith("/api/") or path == "/openapi.json":
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["error"] == "NotAuthenticatedError"
            assert response.headers["www-authenticate"] == "Bearer"
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next="), (method, path)
        assert "cats sitting on mats" not in response.text
        bogus = client.request(method, url, headers={"Authorization": "Bearer lbl_not_a_real_token"})
        assert bogus.status_code == 401, (method, path, "bogus token")
        checked += 1
    assert checked == len(every_route(app)) - len(PUBLIC)
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/static/style.css").status_code == 200


def test_post_without_csrf_token_is_refused(client, seeded, db_session):
    csrf = sign_in(client, *REVIEWER)
    feature_id = seeded.feature_ids[0]
    label_id = seeded.label_ids["animal nouns"]
    for data in ({"label_id": label_id}, {"label_id": label_id, "csrf_token": "forged"}):
        response = client.post(f"/features/{feature_id}/accept", data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "CSRF" in response.text
    # the JSON API used with the session cookie needs the header too
    response = client.post(f"/api/features/{feature_id}/accept", json={"label_id": label_id})
    assert response.status_code == 403 and response.json()["error"] == "PermissionDeniedError"
    assert db_session.scalar(select(func.count()).select_from(ReviewEvent)) == 0
    assert db_session.scalar(select(Label.status).where(Label.id == label_id)) == "candidate"

    # with the token, the same request goes through
    ok = client.post(f"/api/features/{feature_id}/accept", json={"label_id": label_id}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    assert ok.json()["current_label_id"] == label_id


def test_login_and_logout_need_the_csrf_token(client, seeded):
    response = client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1]}, follow_redirects=False)
    assert response.status_code == 403
    csrf = sign_in(client, *ADMIN)
    assert client.post("/logout", follow_redirects=False).status_code == 403  # a cross-site page cannot sign you out
    assert client.get("/queue").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_wrong_password_and_unknown_user_get_the_same_answer(client, seeded):
    csrf = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"username": ADMIN[0], "password": "nope-nope", "csrf_token": csrf})
    unknown = client.post("/login", data={"username": "nobody", "password": "nope-nope", "csrf_token": csrf})
    assert wrong.status_code == unknown.status_code == 401
    assert "name or password is wrong" in wrong.text and "name or password is wrong" in unknown.text
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_login_never_redirects_off_site(client, seeded):
    csrf = csrf_of(client.get("/login").text)
    data = {"username": ADMIN[0], "password": ADMIN[1], "csrf_token": csrf, "next": "//evil.example/x"}
    response = client.post("/login", data=data, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/queue"


def test_reviewer_cannot_manage_users_or_jobs(client, seeded):
    csrf = sign_in(client, *REVIEWER)
    assert client.get("/users").status_code == 403
    form = {"name": "mallory", "password": "mallory-pass-1", "role": "admin", "csrf_token": csrf}
    assert client.post("/users", data=form).status_code == 403
    assert client.post("/users/1/delete", data={"csrf_token": csrf}).status_code == 403
    bearer = {"Authorization": f"Bearer {seeded.reviewer_token}"}
    assert client.get("/api/users", headers=bearer).status_code == 403
    response = client.post("/api/users", headers=bearer, json={"name": "mallory", "password": "mallory-pass-1", "role": "admin"})
    assert response.status_code == 403 and response.json()["error"] == "PermissionDeniedError"
    assert client.delete("/api/users/1", headers=bearer).status_code == 403
    assert client.post("/api/jobs/1/cancel", headers=bearer).status_code == 403
    assert client.post("/api/jobs", headers=bearer, json={"sae_path": "/x"}).status_code == 403
    # an admin may
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    created = client.post("/api/users", headers=admin, json={"name": "mallory", "password": "mallory-pass-1", "role": "reviewer"})
    assert created.status_code == 201 and created.json()["role"] == "reviewer"


def test_no_hash_ever_leaves_the_server(client, seeded):
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    body = client.get("/api/users", headers=admin).text + client.get("/api/users/me", headers=admin).text
    assert "scrypt$" not in body and "hash" not in body
    sign_in(client, *ADMIN)
    page = client.get("/users").text
    assert "scrypt$" not in page
    assert {u["name"] for u in client.get("/api/users", headers=admin).json()} == {"ada", "rita"}


def test_changing_the_password_ends_old_sessions(client, seeded, app):
    sign_in(client, *REVIEWER)
    assert client.get("/queue").status_code == 200
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    reset = client.post("/api/users", headers=admin, json={"name": "rita", "password": "a-new-password", "role": "reviewer"})
    assert reset.status_code == 201
    response = client.get("/queue", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_api_token_from_the_account_page_works_once_shown(client, seeded):
    csrf = sign_in(client, *REVIEWER)
    page = client.post("/account/token", data={"csrf_token": csrf}).text
    token = re.search(r'id="new-token">([^<]+)<', page).group(1)
    with TestClient(client.app, base_url="http://127.0.0.1") as fresh:
        me = fresh.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["name"] == "rita"
        old = fresh.get("/api/users/me", headers={"Authorization": f"Bearer {seeded.reviewer_token}"})
        assert old.status_code == 401, "a new token replaces the old one"
    assert token not in client.get("/account").text, "the token is shown once"


@pytest.mark.parametrize("path", ["/login", "/queue", "/api/review/queue"])
def test_strict_security_headers(client, seeded, path):
    sign_in(client, *ADMIN)
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


def test_templates_have_no_inline_script_and_no_safe_filter():
    from labeler.web.templating import TEMPLATES_DIR

    for template in TEMPLATES_DIR.glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", ""), template.name
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, template.name
        assert re.search(r"\son[a-z]+=", text) is None, template.name
        assert "style=" not in text, template.name


def test_failed_sign_ins_are_throttled_per_name_and_address(client, seeded, monkeypatch):
    from labeler.web.throttle import LoginThrottle

    client.app.state.login_throttle = LoginThrottle("3/minute")
    csrf = csrf_of(client.get("/login").text)

    def attempt(username, password):
        return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf}, follow_redirects=False)

    assert [attempt(ADMIN[0], "wrong-guess").status_code for _ in range(3)] == [401, 401, 401]
    locked = attempt(ADMIN[0], ADMIN[1])  # even the right password waits: a lock that a right guess lifts is no lock
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.text
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert client.get("/queue", follow_redirects=False).status_code == 303
    # the same address is locked for every name too (one client guessing across accounts)
    assert attempt("someone-else", "whatever-pw").status_code == 429


def test_a_login_rate_that_does_not_parse_is_a_config_error():
    from labeler.errors import ConfigError
    from labeler.web.throttle import LoginThrottle

    with pytest.raises(ConfigError, match="LABELER_WEB_LOGIN_FAILURES='often' is not a rate"):
        LoginThrottle("often")


def test_with_a_redis_broker_every_web_process_counts_the_same_failures():
    from labeler.web.throttle import LoginThrottle, counter_storage

    broker = "redis://127.0.0.1:6379/15"  # the deployment's Redis (CI starts it); keys below are unique to this run
    first, second = (LoginThrottle("2/minute", counter_storage(broker)) for _ in range(2))  # two web processes
    keys = (f"name:{uuid.uuid4().hex}",)
    first.failed(keys)
    assert second.retry_after_s(keys) is None
    second.failed(keys)
    assert 1 <= first.retry_after_s(keys) <= 60 and 1 <= second.retry_after_s(keys) <= 60


def test_unreachable_counters_let_sign_in_go_on_unthrottled(caplog):
    from labeler.web.throttle import LoginThrottle, counter_storage

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    throttle = LoginThrottle("1/minute", counter_storage(dead))
    throttle.failed(("name:x",))
    assert throttle.retry_after_s(("name:x",)) is None
    assert "sign-in throttle unavailable" in caplog.text


def test_without_a_redis_broker_counters_stay_in_the_process():
    import limits.storage

    from labeler.web.throttle import counter_storage

    assert isinstance(counter_storage(None), limits.storage.MemoryStorage)
    assert isinstance(counter_storage("memory://"), limits.storage.MemoryStorage)
