"""The in-memory side of the `llm_calls` cache: answers known so far, and the calls paid in this run.

SQL is touched only in bulk and only through a loader the caller provides (`labeler.store.llm_calls`):
a batch asks once for every hash a chunk of features is about to need, so a call on the hot path is a
dict lookup. Work that only learns its requests late (scoring, once a label exists) asks through
`load`, and what many features ask within COALESCE_S shares one query. Queries run on a worker thread,
so the event loop keeps serving answers meanwhile.
New calls are not written here: each one travels with its feature's result (`Account`), written with
the labels it paid for, and is also handed out once by `take_unwritten`, so a running batch can store
its spending before its features finish (both writes are upserts on the request hash).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Iterable, Mapping, Sequence

from labeler.llm.request import LedgerEntry

Loader = Callable[[Sequence[str]], Mapping[str, LedgerEntry]]
COALESCE_S = 0.05  # how long `load` waits for other askers before querying; short beside an LLM call


class Ledger:
    """Request hash -> paid answer. Without a loader it caches within the process only."""

    def __init__(self, *, loader: Loader | None = None, job_id: int | None = None) -> None:
        self.loader = loader
        self.job_id = job_id
        self._entries: dict[str, LedgerEntry] = {}
        self._asked: set[str] = set()  # hashes the loader has answered about
        self.n_loads = 0  # SELECTs issued, so tests and benches can see the batching
        self._pending: dict[str, asyncio.Future] = {}  # hash -> the query that will answer it
        self._waiting: list[str] = []  # hashes of the query that has not started yet
        self._next: asyncio.Future | None = None  # that query's future
        self._queries: set[asyncio.Task] = set()
        self._unwritten: list[LedgerEntry] = []  # paid here, not yet handed to a writer

    def __len__(self) -> int:
        return len(self._entries)

    async def load(self, hashes: Iterable[str], *, coalesce: bool = True) -> None:
        """Bring the stored answers among `hashes` in with one query, run on a worker thread so answers keep
        being served meanwhile (a remote PostgreSQL round trip would otherwise stall every call in flight).

        With `coalesce`, the query waits COALESCE_S for other askers and answers all of them at once;
        without, it starts now (taking along whatever was waiting). A hash already being looked up is
        waited for, not asked twice. A failed query reaches every waiter, and its hashes may be asked again.
        """
        if self.loader is None:
            return
        loop = asyncio.get_running_loop()
        queries: set[asyncio.Future] = set()
        for h in hashes:
            if h in self._entries or h in self._asked:
                continue
            query = self._pending.get(h)
            if query is None:
                if self._next is None:
                    self._next = loop.create_future()
                    self._next.add_done_callback(consume_exception)
                    loop.call_later(COALESCE_S, self._start_query, self._next)
                query = self._pending[h] = self._next
                self._waiting.append(h)
            queries.add(query)
        if not coalesce and self._next is not None and self._next in queries:
            self._start_query(self._next)
        for query in queries:
            await asyncio.shield(query)

    def _start_query(self, query: asyncio.Future) -> None:
        if query is not self._next:  # started early already
            return
        hashes, self._waiting, self._next = self._waiting, [], None
        task = asyncio.get_running_loop().create_task(self._query(hashes, query))
        self._queries.add(task)
        task.add_done_callback(self._queries.discard)

    async def _query(self, hashes: list[str], query: asyncio.Future) -> None:
        try:
            found = await asyncio.to_thread(self.loader, hashes)
        except asyncio.CancelledError:  # the loop is closing: its waiters are being cancelled too
            query.cancel()
            raise
        except Exception as exc:
            query.set_exception(exc)
        else:
            self._asked.update(hashes)
            self._entries.update(found)
            self.n_loads += 1
            query.set_result(None)
        finally:
            for h in hashes:
                self._pending.pop(h, None)

    def get(self, request_hash: str) -> LedgerEntry | None:
        return self._entries.get(request_hash)

    def record(self, entry: LedgerEntry) -> None:
        """A call just paid for."""
        if entry.request_hash not in self._entries:
            self._entries[entry.request_hash] = entry
            self._unwritten.append(entry)

    def take_unwritten(self) -> list[LedgerEntry]:
        """Calls paid since the last take, for a writer to store while the batch runs."""
        taken, self._unwritten = self._unwritten, []
        return taken

    def entries(self) -> list[LedgerEntry]:
        return list(self._entries.values())


def consume_exception(future: asyncio.Future) -> None:
    """Mark a shared future's exception as seen: its waiters raise it, and all of them may be gone."""
    if not future.cancelled():
        future.exception()
