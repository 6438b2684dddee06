"""Label a batch of features: explain each one, score every candidate, and account for what it cost.

Every feature runs as its own task: explain, then score its candidates as soon as it has them. The LLM
client's slots are the only limit on requests in flight, and they serve explanations before scoring
(labeler/llm/slots.py): explanations unlock scoring calls, so all of them go out early and the scoring
that is left at the end keeps every slot busy to the last wave. Explain requests are looked up in the
ledger a chunk of `concurrency` features at a time with one query; scoring requests, known only once a
label exists, through the ledger's coalescing `load`. A call on the hot path is then a dict lookup,
never its own SQL round trip. While the batch runs, the heap that existed before it is frozen out of the
garbage collector (`gc.freeze`): a full collection over torch's and transformers' objects stalls the
event loop for 0.1-0.2 s, which at 320 calls/s is a whole wave of requests not sent.

Outcome per feature: `labelled`; `failed` with the reason (no usable label after retries, a scorer that
got no usable answer, the endpoint down after retries); or `pending` when the job's budget ran out
before it was done (it is labelled when the job resumes, from the ledger where already paid).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Awaitable, Protocol, Sequence

from labeler.config import LabelConfig
from labeler.errors import BudgetExceededError, LLMError
from labeler.explain import build_explainer
from labeler.label.split import ExampleSplit, split_examples
from labeler.llm import Account, LLMContext, current_account
from labeler.llm.request import LedgerEntry
from labeler.llm.slots import EXPLAIN_FIRST, SCORE_LATER, call_priority
from labeler.score import build_scorer, scorer_class
from labeler.types import FeatureExamples, LabelCandidate, ScoreResult

NO_LLM = "no LLM endpoint configured"
YOUNG_GC_THRESHOLD = 20_000  # allocations between young collections while a batch runs (CPython's default: 700)

LABELLED, FAILED, PENDING = "labelled", "failed", "pending"


@dataclass(frozen=True)
class FeatureLabelResult:
    """What labelling one feature produced; tokens and cost are what this run paid (ledger hits are free)."""

    feature_index: int
    status: str  # labelled | failed | pending
    candidates: tuple[LabelCandidate, ...] = ()
    scores: tuple[tuple[int, ScoreResult], ...] = ()  # (candidate position, result)
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: tuple[LedgerEntry, ...] = ()  # paid calls, written to `llm_calls` with the labels


def resolve_explainer(name: str, llm: LLMContext | None) -> str:
    """'auto' is the LLM explainer when an endpoint is configured, else the offline one."""
    if name == "auto":
        return "llm" if llm is not None else "offline"
    return name


async def _gather_strict(awaitables: Sequence[Awaitable]) -> list:
    """gather() that cancels the rest when one raises, and re-raises that error unwrapped."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        await _cancel_all(tasks)
        raise


async def _cancel_all(tasks: Sequence[asyncio.Future]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _plan(obj: Any, *args) -> list:
    planner = getattr(obj, "planned_requests", None)
    if planner is None:
        return []
    planned = planner(*args)
    return await planned if inspect.isawaitable(planned) else planned


@dataclass
class _Work:
    feature: FeatureExamples
    config: LabelConfig
    account: Account = field(default_factory=Account)
    candidates: tuple[LabelCandidate, ...] = ()
    scores: tuple[tuple[int, ScoreResult], ...] = ()
    status: str = PENDING
    error: str | None = None

    @cached_property
    def split(self) -> ExampleSplit:
        """Made when the feature's chunk is planned: splitting a whole batch up front delays the first request."""
        return split_examples(self.feature, n_explain=self.config.n_explain_examples, n_score=self.config.n_score_examples)

    def result(self) -> FeatureLabelResult:
        keep = self.status != PENDING
        return FeatureLabelResult(
            feature_index=self.feature.feature_index,
            status=self.status,
            candidates=self.candidates if keep else (),
            scores=self.scores if keep else (),
            error=self.error,
            prompt_tokens=self.account.prompt_tokens,
            completion_tokens=self.account.completion_tokens,
            cost_usd=self.account.cost_usd,
            llm_calls=tuple(self.account.calls),
        )


CALLS_EVERY_S = 1.0  # how often paid calls are handed to the sink while a batch runs


class ResultSink(Protocol):
    """Where a batch's results go while it runs (labeler.label.persist.BatchWriter writes them to SQL)."""

    def write_features(self, results: list["FeatureLabelResult"]) -> None:
        """Finished features, a chunk at a time, each exactly once."""

    def write_calls(self, entries: list[LedgerEntry]) -> None:
        """Calls paid since the last hand-over, every CALLS_EVERY_S: explanations go out long before
        their features finish, and other workers of the job should see that money spent."""


class _Run:
    def __init__(
        self,
        *,
        config: LabelConfig,
        llm: LLMContext | None,
        explainer: str,
        scorers: Sequence[str],
        sink: ResultSink | None = None,
        report_every: int = 64,
    ) -> None:
        self.config = config
        self.llm = llm
        self.sink = sink
        self.report_every = report_every
        self._finished: list[FeatureLabelResult] = []
        # The sink writes on one thread of its own, in order: a database round trip (a commit's fsync, a
        # remote PostgreSQL) then waits beside the LLM calls instead of stalling the event loop.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-sink") if sink is not None else None
        self._writes: list[asyncio.Future] = []
        self.explainer = build_explainer(explainer, config=config, llm=llm)
        self.scorers: dict[str, Any] = {}
        for name in scorers:
            needs_llm = getattr(scorer_class(name), "needs_llm", False)
            self.scorers[name] = None if needs_llm and llm is None else build_scorer(name, config=config, llm=llm)

    async def probe_logprobs(self, account: Account) -> None:
        """Ask for the logprobs probe first, before the queue fills: the scorers' planning waits on it.

        Errors are left to the planning step that needs the answer (it reports them per feature).
        """
        if self.llm is None or not any(s is not None and getattr(s, "needs_llm", False) for s in self.scorers.values()):
            return
        current_account.set(account)
        call_priority.set(EXPLAIN_FIRST)  # the scorers' planning waits on it
        try:
            await self.llm.score.supports_logprobs()
        except LLMError:
            pass

    async def look_up(self, requests, *, coalesce: bool) -> None:
        """Bring the stored answers to `requests` into the ledger, so calls on the hot path are dict lookups."""
        if self.llm is not None and requests:
            await self.llm.ledger.load((r.hash for r in requests), coalesce=coalesce)

    async def explain(self, work: _Work) -> None:
        current_account.set(work.account)
        try:
            work.candidates = tuple(
                await self.explainer.explain(work.feature, work.split.shown, self.config.n_candidates)
            )
        except BudgetExceededError as exc:
            work.status, work.error = PENDING, str(exc)
        except LLMError as exc:
            work.status, work.error = FAILED, f"explain: {exc}"
        else:
            work.status = LABELLED

    async def score_one(self, name: str, scorer: Any, label: str, split: ExampleSplit, feature) -> ScoreResult:
        if scorer is None:
            return ScoreResult(name, "", None, 0, {"skipped": NO_LLM})
        return await scorer.score(label, feature, split.activating, split.non_activating)

    async def score(self, work: _Work) -> None:
        current_account.set(work.account)
        jobs = [
            (pos, name, self.score_one(name, scorer, c.text, work.split, work.feature))
            for pos, c in enumerate(work.candidates)
            for name, scorer in self.scorers.items()
        ]
        outcomes = await asyncio.gather(*(j[2] for j in jobs), return_exceptions=True)
        scores, errors = [], []
        for (pos, name, _), outcome in zip(jobs, outcomes):
            if isinstance(outcome, BudgetExceededError):
                work.status, work.error = PENDING, str(outcome)
                return
            if isinstance(outcome, LLMError):
                message = str(outcome)
                errors.append(message if message.startswith(f"{name} scorer") else f"{name} scorer: {message}")
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                scores.append((pos, outcome))
        work.scores = tuple(scores)
        if errors:
            work.status, work.error = FAILED, "; ".join(errors)

    async def label(self, work: _Work, explained: asyncio.Event) -> None:
        await self._label(work, explained)
        if self.sink is not None:
            self._finished.append(work.result())
            if len(self._finished) >= self.report_every:
                self.flush()

    def flush(self) -> None:
        """Hand finished features to the sink: written while others are still in flight, not after."""
        if self.sink is not None and self._finished:
            finished, self._finished = self._finished, []
            self._write(self.sink.write_features, finished)

    def flush_calls(self) -> None:
        if self.sink is not None and self.llm is not None:
            entries = self.llm.ledger.take_unwritten()
            if entries:
                self._write(self.sink.write_calls, entries)

    def _write(self, method, items: list) -> None:
        failed = [w for w in self._writes if w.done() and w.exception() is not None]
        if failed:  # a write that failed stops the batch here rather than at its end
            raise failed[0].exception()
        self._writes = [w for w in self._writes if not w.done()]
        self._writes.append(asyncio.get_running_loop().run_in_executor(self._writer, method, items))

    async def hand_over_calls(self) -> None:
        while True:
            await asyncio.sleep(CALLS_EVERY_S)
            self.flush_calls()

    async def finish_writes(self) -> None:
        """Hand over what is left and wait until the sink has written everything."""
        if self._writer is None:
            return
        try:
            self.flush_calls()
            self.flush()
            await asyncio.gather(*self._writes)
        finally:
            self._writer.shutdown(wait=True)

    async def _label(self, work: _Work, explained: asyncio.Event) -> None:
        """One feature: explain it, then plan, look up and score every candidate."""
        call_priority.set(EXPLAIN_FIRST)
        try:
            await self.explain(work)
        finally:
            explained.set()
        if work.status != LABELLED:
            return
        call_priority.set(SCORE_LATER)
        planned = []
        try:  # planning may probe the endpoint (logprobs), a paid call like any other
            for c in work.candidates:
                for scorer in self.scorers.values():
                    if scorer is not None:
                        planned += await _plan(scorer, c.text, work.feature, work.split.activating, work.split.non_activating)
        except BudgetExceededError as exc:
            work.status, work.error = PENDING, str(exc)
            return
        except LLMError as exc:
            work.status, work.error = FAILED, f"score: {exc}"
            return
        await self.look_up(planned, coalesce=True)  # scoring plans trickle in: one query for many features
        await self.score(work)

    async def run(self, works: list[_Work], chunk_size: int) -> None:
        """Every feature as a task, started a chunk at a time with one ledger lookup for its explanations.

        The next chunk is planned once an explanation of this one is back: the slots hold a chunk's worth
        of requests anyway, and planning every chunk up front would hold back the first answers.
        """
        tasks = []
        try:
            for start in range(0, len(works), chunk_size):
                chunk = works[start : start + chunk_size]
                current_account.set(chunk[0].account)  # calls made while planning go on the chunk's first feature
                n = self.config.n_candidates
                await self.look_up([r for w in chunk for r in await _plan(self.explainer, w.feature, w.split.shown, n)], coalesce=False)
                explained = asyncio.Event()
                tasks += [asyncio.ensure_future(self.label(w, explained)) for w in chunk]
                await explained.wait()
            await asyncio.gather(*tasks)
        except BaseException:
            await _cancel_all(tasks)
            raise


@contextmanager
def frozen_heap():
    """Keep the objects that exist now out of garbage collection until the block ends (see module doc).

    No `gc.collect()` first: it would cost the very pause this avoids; garbage frozen with the heap is
    collected after the block like any other. Young collections are made rarer too: each answer leaves
    thousands of small containers (logprobs), and the default threshold of 700 collects every few calls.
    The collector is one per process and an llm worker runs batches in several threads: the first batch
    in sets it up, the last one out restores it.
    """
    with _heap_lock:
        if not _heap_users:
            _heap_saved[:] = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(YOUNG_GC_THRESHOLD, *_heap_saved[1:])
        _heap_users.append(None)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users.pop()
            if not _heap_users:
                gc.set_threshold(*_heap_saved)
                gc.unfreeze()


_heap_lock = threading.Lock()
_heap_users: list[None] = []
_heap_saved: list[int] = []


async def label_features(
    features: Sequence[FeatureExamples],
    *,
    config: LabelConfig,
    llm: LLMContext | None,
    explainer: str | None = None,
    scorers: Sequence[str] | None = None,
    sink: ResultSink | None = None,
) -> list[FeatureLabelResult]:
    """Explain and score each feature; explainer and scorers default to the config's. One result per feature, in order.

    A `sink`, when given, also receives the results while the batch runs: finished features a chunk at a
    time and paid calls every second, so they are written while the rest is in flight (and a worker that
    dies mid-batch has kept what it paid for).
    """
    name = resolve_explainer(explainer or config.explainer, llm)
    size = llm.options.concurrency if llm is not None else 64
    run = _Run(
        config=config,
        llm=llm,
        explainer=name,
        scorers=tuple(config.scorers if scorers is None else scorers),
        sink=sink,
        report_every=size,
    )
    works = [_Work(f, config) for f in features]
    with frozen_heap():
        async with llm if llm is not None else nullcontext():
            probe = run.probe_logprobs(works[0].account) if works else None
            hand_over = asyncio.ensure_future(run.hand_over_calls()) if sink is not None else None
            try:
                await _gather_strict([run.run(works, size), *([probe] if probe is not None else [])])
            finally:
                if hand_over is not None:
                    hand_over.cancel()
                await run.finish_writes()
    return [w.result() for w in works]
