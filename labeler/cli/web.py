"""`labeler serve` (review UI + HTTP API) and `labeler user add | token | list | delete`."""

from __future__ import annotations

import ipaddress
import os
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from labeler.errors import ConfigError, LabelerError, NotFoundError
from labeler.settings import Settings, get_settings
from labeler.store import users as store_users
from labeler.store.db import session_scope
from labeler.web.security import MIN_PASSWORD_CHARS, hash_api_token, hash_password, new_api_token

console = Console()
user_app = typer.Typer(no_args_is_help=True, help="Web users: reviewers and admins.")
PASSWORD_ENV = "LABELER_USER_PASSWORD"
DEFAULT_SECRET_KEY = Settings.model_fields["secret_key"].default  # public: in the source of every install


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_serve_settings(host: str, secret_key: str) -> None:
    """Refuse to expose the UI beyond this machine while sessions are signed with the public default key."""
    if secret_key == DEFAULT_SECRET_KEY and not _is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} with the default secret key: anyone could forge a session. "
            "Set LABELER_SECRET_KEY to a long random value (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
        )


def serve(
    host: Optional[str] = typer.Option(None, help="Interface to listen on (default LABELER_WEB_HOST, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default LABELER_WEB_PORT, 8000)."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
) -> None:
    """Run the review UI and HTTP API (OpenAPI spec at /openapi.json)."""
    import uvicorn

    settings = get_settings()
    host = host or settings.web_host
    port = port or settings.web_port
    try:
        check_serve_settings(host, settings.secret_key)
    except ConfigError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"review UI on http://{host}:{port}/  (database {settings.resolved_database_url})")
    uvicorn.run("labeler.web.app:create_app", factory=True, host=host, port=port, workers=workers, proxy_headers=True)


def _password(given: str | None) -> str:
    password = given or os.environ.get(PASSWORD_ENV)
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    return password


@user_app.command("add")
def add_user(
    name: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("reviewer", help="reviewer (decides on labels) | admin (also users and jobs)."),
    password: Optional[str] = typer.Option(
        None, help=f"Password; better from ${PASSWORD_ENV} or the prompt, which keep it out of shell history."
    ),
) -> None:
    """Create a user, or reset the role and password of an existing one."""
    try:
        store_users.check_role(role)
        password_hash = hash_password(_password(password))
        with session_scope() as session:
            store_users.upsert_user(session, name=name, role=role, password_hash=password_hash)
    except LabelerError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"user [bold]{name}[/] saved as {role}")


@user_app.command("token")
def make_token(name: str = typer.Argument(..., help="User the token acts as.")) -> None:
    """Print a new API token for NAME, once; the user's previous token stops working."""
    token = new_api_token()
    try:
        with session_scope() as session:
            store_users.set_api_token_hash(session, name=name, token_hash=hash_api_token(token))
    except LabelerError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(token)


@user_app.command("list")
def list_users() -> None:
    """Users with their roles (no secrets)."""
    table = Table("id", "name", "role", "API token", "created")
    with session_scope() as session:
        for user in store_users.list_users(session):
            table.add_row(str(user.id), user.name, user.role, "yes" if user.has_api_token else "no", f"{user.created_at:%Y-%m-%d}")
    console.print(table)


@user_app.command("delete")
def delete_user(name: str = typer.Argument(...)) -> None:
    """Delete a user; their review events stay in the audit trail under their name."""
    try:
        with session_scope() as session:
            user = store_users.find_user_by_name(session, name=name)
            if user is None:
                raise NotFoundError(f"no user named {name!r}; `labeler user list` shows them")
            store_users.delete_user(session, user_id=user.id)
    except LabelerError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"user [bold]{name}[/] deleted")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
