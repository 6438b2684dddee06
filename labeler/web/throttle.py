"""Throttling failed sign-ins: the one place the web keeps state outside SQL (counters in the web process)."""

from __future__ import annotations

import math
import time
from typing import Sequence

import limits
import limits.storage
import limits.strategies

from labeler.errors import ConfigError


class LoginThrottle:
    """Failed sign-ins counted per user name and per client address in a moving window (`limits`).

    Checked before the password is: a locked name answers 429 without costing a scrypt check, and a right
    guess during the lock is refused like a wrong one. Counters live in the web process.
    """

    def __init__(self, rate: str) -> None:
        try:
            self.rate = limits.parse(rate)
        except ValueError as exc:
            raise ConfigError(f"LABELER_WEB_LOGIN_FAILURES={rate!r} is not a rate like '10/minute': {exc}") from exc
        self.limiter = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())

    def retry_after_s(self, keys: Sequence[str]) -> int | None:
        """Seconds until every key may try again; None when none is locked."""
        waits = [
            self.limiter.get_window_stats(self.rate, "login", key).reset_time - time.time()
            for key in keys
            if not self.limiter.test(self.rate, "login", key)
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.limiter.hit(self.rate, "login", key)
