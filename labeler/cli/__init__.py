"""The `labeler` command: each area registers its commands from its own module."""

import typer

from labeler.cli import db, demo, jobs, web

app = typer.Typer(no_args_is_help=True, help="Label every feature of a sparse autoencoder.")

for module in (db, jobs, demo, web):
    module.register(app)
