from labeler.cli import app

app()
