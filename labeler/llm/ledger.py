"""The in-memory side of the `llm_calls` cache: answers known so far, and the calls paid in this run.

SQL is touched only in bulk and only through a loader the caller provides (`labeler.store.llm_calls`):
`prefetch` asks once for every hash a batch of features is about to need, so a call on the hot path is a
dict lookup. New calls are not written here; each one travels with its feature's result (`Account`) and
`persist_label_results` upserts them in the same transaction as the labels they paid for.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from labeler.llm.request import LedgerEntry

Loader = Callable[[Sequence[str]], Mapping[str, LedgerEntry]]


class Ledger:
    """Request hash -> paid answer. Without a loader it caches within the process only."""

    def __init__(self, *, loader: Loader | None = None, job_id: int | None = None) -> None:
        self.loader = loader
        self.job_id = job_id
        self._entries: dict[str, LedgerEntry] = {}
        self._asked: set[str] = set()  # hashes the loader has already been asked about
        self.n_loads = 0  # SELECTs issued, so tests and benches can see the batching

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

    def get(self, request_hash: str) -> LedgerEntry | None:
        return self._entries.get(request_hash)

    def record(self, entry: LedgerEntry) -> None:
        self._entries.setdefault(entry.request_hash, entry)

    def entries(self) -> list[LedgerEntry]:
        return list(self._entries.values())
