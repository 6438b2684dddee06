"""Request slots served by priority: the concurrency limit of one worker process's LLM calls.

A plain semaphore serves waiters in arrival order. Labelling wants the calls that unlock more work first:
an explanation unlocks its scoring calls, so explaining every feature early keeps all slots busy until
the very end, while scoring-only work left for last fills them wave after wave. The caller's priority
travels in a context variable (`call_priority`), set by whoever knows the stage, read at the call.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import AsyncIterator

EXPLAIN_FIRST, SCORE_LATER = 0, 1  # lower is served first
call_priority: ContextVar[int] = ContextVar("call_priority", default=SCORE_LATER)


class Slots:
    """At most `n` holders at once; waiters by (priority, arrival)."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"need at least one slot, got {n}")
        self.free = n
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._arrival = itertools.count()

    @asynccontextmanager
    async def hold(self, priority: int | None = None) -> AsyncIterator[None]:
        await self._acquire(call_priority.get() if priority is None else priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrival), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot, then cancelled: pass it on
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():  # cancelled waiters stay in the heap until they come up
                waiter.set_result(None)
                return
        self.free += 1
