"""The Celery app. With no broker configured, tasks run eagerly in-process (the embedded default).

Queues: `gpu` (activation shards and merges: long, memory-heavy, one at a time per worker process) and
`llm` (batches of features: short, I/O bound, async inside). Job state and fan-in live in SQL.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from labeler.settings import Settings, get_settings

QUEUES = ("gpu", "llm")
ROUTES = {
    "workers.tasks.cache_shard": {"queue": "gpu"},
    "workers.tasks.merge": {"queue": "gpu"},
    "workers.tasks.try_text": {"queue": "gpu"},
    "workers.tasks.label_batch": {"queue": "llm"},
    "workers.tasks.finalize": {"queue": "llm"},
    "workers.tasks.relabel_feature": {"queue": "llm"},
}


def celery_config(settings: Settings) -> dict:
    """Celery settings derived from ours: no broker means eager, in-process execution."""
    return dict(
        broker_url=settings.broker_url or "memory://",
        result_backend=settings.result_backend or settings.broker_url or "cache+memory://",
        task_always_eager=settings.broker_url is None,
        task_eager_propagates=True,
        # Explicit exchanges: queues without one inherit the default queue's binding, which would copy
        # every message into both queues.
        task_queues=tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES),
        task_default_queue="llm",
        task_routes=ROUTES,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Job state lives in SQL; only the "try it" task returns a result (it sets ignore_result=False).
        task_ignore_result=True,
        result_expires=3600,
        # Unacked messages come back after this long; it must exceed the longest task (a gpu shard).
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_serializer="json",
        accept_content=["json"],
    )


app = Celery("sae_labeler", include=["workers.tasks"])
_applied: list[Settings] = []


def configured_app() -> Celery:
    """The app, configured from the current settings (re-read when they changed, e.g. between tests)."""
    settings = get_settings()
    if not _applied or _applied[0] is not settings:
        app.conf.update(celery_config(settings))
        # Drop broker connections made under the old settings, as Celery does after a fork.
        app.close()
        app.amqp._producer_pool = None
        _applied[:] = [settings]
    return app


configured_app()
