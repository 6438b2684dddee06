"""The in-memory side of the `llm_calls` cache: answers known so far, and the calls paid in this run.

SQL is touched only in bulk and only through a loader the caller provides (`labeler.store.llm_calls`):
`prefetch` asks once for every hash a batch of features is about to need, so a call on the hot path is a
dict lookup. Work that only learns its requests late (scoring, once a label exists) asks through
`load`, and what many features ask within COALESCE_S shares one query. New calls are not written here:
each one travels with its feature's result (`Account`), written with the labels it paid for, and is
also handed out once by `take_unwritten`, so a running batch can store its spending before its features
finish (both writes are upserts on the request hash).
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
        self._asked: set[str] = set()  # hashes the loader has already been asked about
        self.n_loads = 0  # SELECTs issued, so tests and benches can see the batching
        self._waiting: list[str] = []
        self._unwritten: list[LedgerEntry] = []  # paid here, not yet handed to a writer
        self._loaded: asyncio.Future | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def prefetch(self, hashes: Iterable[str]) -> int:
        """Load every stored answer among `hashes` with one query; returns how many were found."""
        if self.loader is None:
            return 0
        unknown = [h for h in dict.fromkeys(hashes) if h not in self._entries and h not in self._asked]
        if not unknown:
            return 0
        self._asked.update(unknown)
        found = self.loader(unknown)
        self.n_loads += 1
        self._entries.update(found)
        return len(found)

    async def load(self, hashes: Iterable[str]) -> None:
        """`prefetch` shared with every other `load` of the next COALESCE_S: one query for all of them."""
        if self.loader is None:
            return
        new = [h for h in hashes if h not in self._entries and h not in self._asked]
        if not new:
            return
        self._waiting.extend(new)
        if self._loaded is None:
            self._loaded = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(COALESCE_S, self._load_waiting)
        await asyncio.shield(self._loaded)

    def _load_waiting(self) -> None:
        loaded, waiting = self._loaded, self._waiting
        self._loaded, self._waiting = None, []
        try:
            self.prefetch(waiting)
        except BaseException as exc:  # every waiter sees the failure
            loaded.set_exception(exc)
        else:
            loaded.set_result(None)

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
