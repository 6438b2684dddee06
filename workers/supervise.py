"""`labeler worker` keeps its Celery worker alive: a small parent process that restarts it when it dies.

Why: a Celery worker can exit on an "Unrecoverable error" that is really a broker blip (seen here with
kombu 5.7 on Redis: connections cut, then Redis stopped while messages were unacknowledged, and restoring
them raised AttributeError inside kombu). Its unacknowledged tasks come back to the queue anyway
(acks_late), so all a restart has to do is start a fresh worker, as a container restart policy would,
but without needing one.

The parent forwards SIGTERM / SIGINT (a warm shutdown, then it exits with the worker's status) and the
worker dies with the parent (Linux PR_SET_PDEATHSIG), so killing `labeler worker` still kills the worker.
A worker that keeps dying within seconds of its start is given up on after MAX_QUICK_FAILURES in a row:
that is a configuration error, not a blip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

log = logging.getLogger("labeler.worker")

QUICK_FAILURE_S = 30.0  # a worker that ran less than this before dying failed "quickly"
MAX_QUICK_FAILURES = 5
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0
PR_SET_PDEATHSIG = 1


def celery_worker_command(argv: Sequence[str]) -> list[str]:
    """The Celery worker as its own process, with this interpreter and our app."""
    return [sys.executable, "-m", "celery", "-A", "workers.app:app", *argv]


def _die_with_parent_hook() -> Callable[[], None] | None:
    """What the child runs between fork and exec so it gets SIGKILL when this process dies (Linux only).

    libc is looked up here, in the parent: between fork and exec the child should do as little as possible.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not glibc / musl as expected: go on without it
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return hook


def supervise(command: Sequence[str], *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Run `command` until it exits cleanly or a shutdown is asked for; restart it when it dies. Returns its status."""
    stopping: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum, _frame) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    die_with_parent = _die_with_parent_hook()
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        quick_failures, backoff_s = 0, FIRST_BACKOFF_S
        while True:
            started = time.monotonic()
            child = subprocess.Popen(list(command), preexec_fn=die_with_parent)
            log.info("worker process %d started", child.pid)
            status = child.wait()
            if stopping:  # ended by the signal we forwarded, before it could install its handlers: a clean stop too
                return 0 if status in (0, -stopping[0]) else _exit_code(status)
            if status == 0:
                return 0
            ran_s = time.monotonic() - started
            if ran_s < QUICK_FAILURE_S:
                quick_failures += 1
            else:  # it had been working: a fresh start, not one more failure in a row
                quick_failures, backoff_s = 0, FIRST_BACKOFF_S
            if quick_failures >= MAX_QUICK_FAILURES:
                log.error("worker process died %d times within %.0f s of starting; giving up (status %d)", quick_failures, QUICK_FAILURE_S, status)
                return _exit_code(status)
            log.warning("worker process %d exited with status %d after %.0f s; restarting in %.0f s", child.pid, status, ran_s, backoff_s)
            sleep(backoff_s)
            if stopping:
                return _exit_code(status)
            backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _exit_code(status: int) -> int:
    """A child's status as our exit code: killed by signal N is 128 + N, as shells report it."""
    return 128 - status if status < 0 else status
