"""Every task lands on exactly one queue: gpu work never reaches llm workers, and no message is copied."""

from labeler.pipeline import STEPS
from workers.app import QUEUES, ROUTES, app, configured_app
from workers import tasks


def test_queues_have_their_own_bindings():
    bindings = {(q.exchange.name, q.routing_key) for q in app.amqp.queues.values()}
    assert len(bindings) == len(QUEUES), "two queues share a binding: each message would land in both"


def test_every_task_and_step_is_routed_to_a_known_queue():
    for name in list(STEPS) + ["relabel_feature", "try_text"]:
        assert hasattr(tasks, name), name
        route = app.amqp.router.route({}, f"workers.tasks.{name}")
        assert route["queue"].name == ROUTES[f"workers.tasks.{name}"]["queue"] in QUEUES
    assert {r["queue"] for r in ROUTES.values()} == set(QUEUES)


def test_gpu_tasks_are_late_acked_one_at_a_time():
    conf = configured_app().conf  # the default settings (an earlier test may have configured others)
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] >= 3600
