"""The `labeler` command: each area registers its commands from its own module."""

import typer

from labeler.cli import db, demo, demo_bundle, jobs, web
from labeler.cli import labels as labels_cli

app = typer.Typer(no_args_is_help=True, help="Label every feature of a sparse autoencoder.")

for module in (db, jobs, demo, demo_bundle, web, labels_cli):
    module.register(app)
