"""The `labeler` command: each area registers its commands from its own module."""

import typer

from labeler.cli import db, jobs

app = typer.Typer(no_args_is_help=True, help="Label every feature of a sparse autoencoder.")

for module in (db, jobs):
    module.register(app)
