"""The app factory: settings, SQL sessions, middleware, routers, error handler, static files.

    create_app() -> FastAPI        everything below wired together; `labeler serve` runs it

Middleware order (outermost first): security headers -> signed-cookie sessions -> routes. Every route
also passes `verify_csrf`; every route but login, health and static files requires a user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from importlib.metadata import version
from labeler.settings import Settings, get_settings
from labeler.store.db import session_factory
from labeler.web.deps import CurrentUser, verify_csrf
from labeler.web.errors import install_error_handlers
from labeler.web.headers import SecurityHeadersMiddleware
from labeler.web.routes import api, auth, features, health, jobs, labels, queue, review, users
from labeler.web.throttle import LoginThrottle, counter_storage

STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "labeler_session"
SESSION_MAX_AGE_S = 8 * 3600  # one working day; then sign in again


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="sae-labeler",
        version=version("sae-labeler"),
        description="Review UI and HTTP API. Authenticate with `Authorization: Bearer <token>` "
        "(`labeler user token NAME` prints one).",
        dependencies=[Depends(verify_csrf)],
        docs_url=None,  # Swagger UI needs a CDN and inline scripts; the spec is at /openapi.json
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory(settings.resolved_database_url)
    app.state.login_throttle = LoginThrottle(settings.web_login_failures, counter_storage(settings.broker_url))

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=settings.web_https_only,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    for module in (health, auth, queue, features, review, labels, jobs, users, api):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(user: CurrentUser) -> dict[str, Any]:
        """The API's OpenAPI spec (signed-in users and token holders only, like everything else)."""
        return app.openapi()

    return app
