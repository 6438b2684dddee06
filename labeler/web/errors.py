"""One handler turns every `LabelerError` into an HTTP answer: JSON for the API, a page for the browser.

The most specific class in `STATUS_BY_ERROR` wins, so a new subclass inherits its parent's status.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
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
        return JSONResponse({"detail": _printable(exc), "error": type(exc).__name__}, status_code=status, headers=headers)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    from labeler.web.templating import render

    return render(request, "error.html", {"status": status, "message": _printable(exc)}, status_code=status)


def _printable(value: object) -> str:
    """Any value as text that UTF-8 can carry (a client-chosen field name may be a lone surrogate)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def handle_validation_error(request: Request, exc: RequestValidationError) -> Response:
    """422 listing where and why, without echoing the input back.

    FastAPI's default answer repeats each bad input, and an input that is not valid Unicode (a lone
    surrogate) cannot be encoded into the response: the refusal itself would become a server error.
    """
    problems = [
        {
            "loc": [_printable(part) for part in error.get("loc", ())],
            "msg": _printable(error.get("msg", "")),
            "type": _printable(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    if wants_json(request):
        return JSONResponse({"detail": problems, "error": "RequestValidationError"}, status_code=422)
    from labeler.web.templating import render

    message = "; ".join(f"{'.'.join(p['loc'][1:]) or p['loc'][0]}: {p['msg']}" for p in problems)
    return render(request, "error.html", {"status": 422, "message": message}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LabelerError, handle_labeler_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
