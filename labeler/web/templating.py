"""Jinja2 with autoescaping always on: dataset tokens and LLM labels are untrusted text.

No template marks data `|safe`, and nothing here builds markup from strings (tests/web checks that a
`<script>` in a dataset or a label shows up as text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from labeler.web.deps import csrf_token_for

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _score(value: float | None) -> str:
    return "skipped" if value is None else f"{value:.3f}"


def _make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty_json"] = _pretty_json
    env.filters["score"] = _score
    return env


ENVIRONMENT = _make_environment()


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    """Render a page with what every page needs: the user, the CSRF token, a one-time flash message."""
    page = {
        "request": request,
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf_token_for(request),
        "flash": request.session.pop("flash", None),
        **context,
    }
    html = ENVIRONMENT.get_template(name).render(page)
    return HTMLResponse(html, status_code=status_code)


def flash(request: Request, message: str) -> None:
    """A message shown once on the next page (after a redirect that follows a form post)."""
    request.session["flash"] = message
