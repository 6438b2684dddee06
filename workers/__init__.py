"""Celery shells around labeler.pipeline: the app (app.py), the tasks (tasks.py), and dispatch."""
