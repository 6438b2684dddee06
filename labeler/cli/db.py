"""`labeler db ...`: schema migrations and the analysts' read-only role."""

from typing import Optional

import typer
from rich.console import Console

from labeler.settings import get_settings
from labeler.errors import LabelerError
from labeler.store import db as store_db
from labeler.store import readonly as store_readonly

console = Console()
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the configured database to REVISION (default: the newest)."""
    url = get_settings().resolved_database_url
    store_db.upgrade(url, revision)
    console.print(f"database at [bold]{revision}[/]: {url}")


@db_app.command("downgrade")
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base")) -> None:
    """Migrate the configured database down to REVISION."""
    url = get_settings().resolved_database_url
    store_db.downgrade(url, revision)
    console.print(f"database at [bold]{revision}[/]: {url}")


@db_app.command("grant-readonly")
def grant_readonly(
    role: str = typer.Argument(..., help="Role to create or update, e.g. analyst."),
    login: bool = typer.Option(False, "--login", help="Let the role log in (default NOLOGIN: grant it to users)."),
    password: Optional[str] = typer.Option(
        None, "--password", envvar="LABELER_READONLY_PASSWORD", help="Set a password (implies --login)."
    ),
    schema: str = typer.Option("public", help="Schema holding the labeler tables."),
) -> None:
    """PostgreSQL: give ROLE SELECT on every table and view (now and after later migrations), nothing else."""
    url = get_settings().resolved_database_url
    try:
        with store_db.session_scope(url) as session:
            result = store_readonly.grant_readonly(session, role=role, login=login, password=password, schema=schema)
    except LabelerError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    verb = "created" if result.created else "updated"
    console.print(
        f"role [bold]{result.role}[/] {verb} ({'LOGIN' if result.login else 'NOLOGIN'}): SELECT on every table and "
        f"view of {result.database}.{result.schema}, also on tables {result.tables_owner} creates later"
    )
    if result.public_can_create:
        console.print(
            f"[yellow]warning:[/] PUBLIC may still CREATE in schema {result.schema} (PostgreSQL 14 and older); "
            f"run: REVOKE CREATE ON SCHEMA {result.schema} FROM PUBLIC"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
