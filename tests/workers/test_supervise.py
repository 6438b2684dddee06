"""`labeler worker` restarts its Celery worker when it dies, and takes it along when it is stopped or killed."""

from __future__ import annotations

import signal
import sys
import time

import psutil

from workers.supervise import MAX_QUICK_FAILURES, supervise


def wait_until(condition, timeout_s: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout_s} s")


def worker_child(parent: psutil.Process) -> psutil.Process | None:
    children = [c for c in parent.children() if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    return children[0] if children else None


def test_a_worker_that_dies_is_restarted_and_stopping_the_parent_stops_it(workers):
    parent_popen = workers.start()
    parent = psutil.Process(parent_popen.pid)
    first = wait_until(lambda: worker_child(parent), what="a worker process")
    wait_until(lambda: "ready." in workers.logs(), what="the worker ready")

    first.send_signal(signal.SIGKILL)  # the worker dies on its own (an unrecoverable error, the OOM killer...)
    second = wait_until(lambda: (c := worker_child(parent)) is not None and c.pid != first.pid and c, what="a new worker process")
    assert parent_popen.poll() is None
    assert "exited with status -9" in workers.logs() and "restarting" in workers.logs()
    wait_until(lambda: workers.logs().count("ready.") >= 2, what="the new worker ready")

    parent_popen.send_signal(signal.SIGTERM)  # a warm shutdown goes to the worker, and the parent follows it out
    assert parent_popen.wait(timeout=60) == 0
    assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE


def test_killing_the_parent_kills_the_worker(workers):
    parent_popen = workers.start()
    child = wait_until(lambda: worker_child(psutil.Process(parent_popen.pid)), what="a worker process")
    parent_popen.send_signal(signal.SIGKILL)
    parent_popen.wait(timeout=10)
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, what="the worker gone with its parent")


def test_a_worker_that_cannot_start_is_given_up_on():
    runs: list[float] = []
    status = supervise([sys.executable, "-c", "raise SystemExit(3)"], sleep=runs.append)
    assert status == 3
    assert len(runs) == MAX_QUICK_FAILURES - 1  # a wait before every restart, with backoff
    assert runs == sorted(runs) and runs[0] < runs[-1]


def test_a_worker_that_exits_cleanly_is_not_restarted():
    waits: list[float] = []
    assert supervise([sys.executable, "-c", "pass"], sleep=waits.append) == 0
    assert waits == []
