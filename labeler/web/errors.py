"""One handler turns every `LabelerError` into an HTTP answer: JSON for the API, a page for the browser.

The most specific class in `STATUS_BY_ERROR` wins, so a new subclass inherits its parent's status.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from labeler.errors import (
    AuthError,
    BudgetExceededError,
    ConfigError,
    LabelerError,
    LLMError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    SourceError,
    StoreError,
)

STATUS_BY_ERROR: tuple[tuple[type[LabelerError], int], ...] = (
    (NotFoundError, 404),
    (StoreError, 409),
    (SourceError, 422),
    (ConfigError, 422),
    (NotAuthenticatedError, 401),
    (PermissionDeniedError, 403),
    (AuthError, 401),
    (BudgetExceededError, 402),
    (LLMError, 502),
)
DEFAULT_STATUS = 400


def status_for(exc: LabelerError) -> int:
    """The status of the closest ancestor listed (method resolution order: most specific first)."""
    statuses = dict(STATUS_BY_ERROR)
    for cls in type(exc).__mro__:
        if cls in statuses:
            return statuses[cls]
    return DEFAULT_STATUS


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path == "/openapi.json" or request.headers.get("authorization"):
        return True
    return "text/html" not in request.headers.get("accept", "")


def handle_labeler_error(request: Request, exc: LabelerError) -> Response:
    status = status_for(exc)
    if wants_json(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status, headers=headers)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    from labeler.web.templating import render

    return render(request, "error.html", {"status": status, "message": str(exc)}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LabelerError, handle_labeler_error)
