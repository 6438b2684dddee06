"""Turn pipeline `Work` into Celery messages on the right queue (or inline calls when eager)."""

from __future__ import annotations

from typing import Iterable

from labeler.pipeline import Work


def dispatch(work: Iterable[Work]) -> None:
    from workers import tasks
    from workers.app import configured_app

    configured_app()
    for item in work:
        getattr(tasks, item.step).apply_async(args=list(item.args), queue=item.queue)
