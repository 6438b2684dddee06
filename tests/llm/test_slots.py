"""Priority slots and the ledger's coalesced lookups: the scheduling the LLM stage's throughput rests on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from labeler.llm import Ledger, LedgerEntry
from labeler.llm.slots import EXPLAIN_FIRST, SCORE_LATER, Slots, call_priority


async def hold_until(slots: Slots, gate: asyncio.Event) -> None:
    async with slots.hold():
        await gate.wait()


def test_waiters_are_served_by_priority_then_in_arrival_order():
    served: list[str] = []

    async def go():
        slots = Slots(1)
        gate = asyncio.Event()

        async def call(name: str, priority: int):
            call_priority.set(priority)
            async with slots.hold():
                served.append(name)

        first = asyncio.ensure_future(hold_until(slots, gate))
        await asyncio.sleep(0)
        waiters = [
            asyncio.ensure_future(call(name, priority))
            for name, priority in [("score-a", SCORE_LATER), ("explain-a", EXPLAIN_FIRST), ("score-b", SCORE_LATER), ("explain-b", EXPLAIN_FIRST)]
        ]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *waiters)
        return slots.free

    assert asyncio.run(go()) == 1
    assert served == ["explain-a", "explain-b", "score-a", "score-b"]


def test_a_cancelled_waiter_neither_takes_nor_loses_a_slot():
    async def go():
        slots = Slots(2)
        gate = asyncio.Event()
        holders = [asyncio.ensure_future(hold_until(slots, gate)) for _ in range(2)]
        await asyncio.sleep(0)
        cancelled = asyncio.ensure_future(hold_until(slots, gate))
        later = asyncio.ensure_future(hold_until(slots, gate))
        await asyncio.sleep(0)
        cancelled.cancel()
        gate.set()
        await asyncio.gather(*holders, later)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        return slots.free

    assert asyncio.run(go()) == 2


def test_slots_need_at_least_one():
    with pytest.raises(ValueError, match="at least one slot"):
        Slots(0)


def test_loads_within_the_window_share_one_query_and_known_hashes_need_none():
    asked: list[list[str]] = []

    def loader(hashes):
        asked.append(sorted(hashes))
        return {}

    async def go():
        ledger = Ledger(loader=loader)
        await asyncio.gather(ledger.load(["a", "b"]), ledger.load(["b", "c"]), ledger.load([]))
        await ledger.load(["a", "c"])  # asked before: no query, no wait
        return ledger.n_loads

    assert asyncio.run(go()) == 1
    assert asked == [["a", "b", "c"]]


def test_a_failing_load_reaches_every_waiter():
    def loader(hashes):
        raise RuntimeError("database went away")

    async def go():
        ledger = Ledger(loader=loader)
        return await asyncio.gather(ledger.load(["a"]), ledger.load(["b"]), return_exceptions=True)

    outcomes = asyncio.run(go())
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]


def test_lookups_run_off_the_event_loop_and_a_hash_in_flight_is_not_asked_again():
    asked: list[list[str]] = []
    loop_ran_meanwhile = threading.Event()

    def loader(hashes):
        asked.append(sorted(hashes))
        # a loader on the event loop's own thread would wait here in vain, the loop being stuck in it
        assert loop_ran_meanwhile.wait(timeout=10), "the event loop did not run during the query"
        return {h: entry(h) for h in hashes if h != "missing"}

    async def go():
        ledger = Ledger(loader=loader)
        first = asyncio.ensure_future(ledger.load(["a", "missing"], coalesce=False))
        await asyncio.sleep(0)  # the query is on its thread now
        second = asyncio.ensure_future(ledger.load(["a"], coalesce=False))  # in flight: waits for the same query
        loop_ran_meanwhile.set()
        await asyncio.gather(first, second)
        await ledger.load(["a", "missing"])  # answered (or known absent): no query, no wait
        return ledger.n_loads, ledger.get("a"), ledger.get("missing")

    n_loads, a, missing = asyncio.run(go())
    assert asked == [["a", "missing"]] and n_loads == 1
    assert a == entry("a") and missing is None


def test_an_immediate_lookup_takes_along_what_was_waiting_to_coalesce():
    asked: list[list[str]] = []

    async def go():
        ledger = Ledger(loader=lambda hashes: asked.append(sorted(hashes)) or {})
        waiting = asyncio.ensure_future(ledger.load(["b"]))  # would wait COALESCE_S for company
        await asyncio.sleep(0)
        await ledger.load(["a"], coalesce=False)
        await waiting
        return ledger.n_loads

    assert asyncio.run(go()) == 1
    assert asked == [["a", "b"]]


def test_hashes_of_a_failed_lookup_are_asked_again():
    calls: list[list[str]] = []

    def loader(hashes):
        calls.append(sorted(hashes))
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return {}

    async def go():
        ledger = Ledger(loader=loader)
        with pytest.raises(RuntimeError, match="went away"):
            await ledger.load(["a"], coalesce=False)
        await ledger.load(["a"], coalesce=False)

    asyncio.run(go())
    assert calls == [["a"], ["a"]]


def entry(request_hash: str) -> LedgerEntry:
    return LedgerEntry(request_hash, "m", 1, 1, 0.1, 0.0, 1, response={"model": "m", "choices": []})
