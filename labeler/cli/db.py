"""`labeler db ...`: schema migrations."""

import typer
from rich.console import Console

from labeler.settings import get_settings
from labeler.store import db as store_db

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


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
