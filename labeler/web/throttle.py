"""Throttling failed sign-ins: the one place the web keeps state outside SQL.

Counters live in Redis when there is one (`LABELER_BROKER_URL=redis://...`): every web process of a
deployment then counts the same failures, so running four workers does not give a guesser four times the
tries. Without a broker (the embedded default, one process) they live in the web process.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import limits
import limits.errors
import limits.storage
import limits.strategies

from labeler.errors import ConfigError


log = logging.getLogger(__name__)
KEY_PREFIX = "sae-labeler"


def counter_storage(broker_url: str | None) -> limits.storage.Storage:
    """Redis shared by the deployment when the broker is Redis, else this process's memory."""
    if broker_url and broker_url.startswith(("redis://", "rediss://")):
        return limits.storage.RedisStorage(broker_url, key_prefix=KEY_PREFIX, wrap_exceptions=True, socket_timeout=2)
    return limits.storage.MemoryStorage()


class LoginThrottle:
    """Failed sign-ins counted per user name and per client address in a moving window (`limits`).

    Checked before the password is: a locked name answers 429 without costing a scrypt check, and a right
    guess during the lock is refused like a wrong one. If the counters cannot be reached (Redis down),
    sign-in goes on unthrottled and says so in the log: the password check still stands, and a broken
    counter store must not lock every administrator out.
    """

    def __init__(self, rate: str, storage: limits.storage.Storage | None = None) -> None:
        try:
            self.rate = limits.parse(rate)
        except ValueError as exc:
            raise ConfigError(f"LABELER_WEB_LOGIN_FAILURES={rate!r} is not a rate like '10/minute': {exc}") from exc
        self.limiter = limits.strategies.MovingWindowRateLimiter(storage or limits.storage.MemoryStorage())

    def retry_after_s(self, keys: Sequence[str]) -> int | None:
        """Seconds until every key may try again; None when none is locked (or the counters are unreachable)."""
        try:
            waits = [
                self.limiter.get_window_stats(self.rate, "login", key).reset_time - time.time()
                for key in keys
                if not self.limiter.test(self.rate, "login", key)
            ]
        except limits.errors.StorageError as exc:
            log.warning("sign-in throttle unavailable, not throttling: %s", exc)
            return None
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, keys: Sequence[str]) -> None:
        try:
            for key in keys:
                self.limiter.hit(self.rate, "login", key)
        except limits.errors.StorageError as exc:
            log.warning("sign-in throttle unavailable, failure not counted: %s", exc)
