"""Prices, per-feature accounts and the per-job budget.

The budget is checked *before* a call with a pessimistic reservation (estimated prompt tokens plus the
full `max_tokens` of completion), so up to `concurrency` calls in flight cannot overshoot it; once a
reservation is refused the budget stays exhausted and every later paid call is refused too, so a job
stops cleanly instead of trickling on. Answers from the ledger cost nothing and are always allowed.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from labeler.errors import BudgetExceededError
from labeler.llm.request import ChatRequest, LedgerEntry

CHARS_PER_TOKEN = 4  # rough for English and code; only used to reserve budget before a call


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    prompt_per_mtok: float = 0.0
    completion_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_per_mtok + completion_tokens * self.completion_per_mtok) / 1e6


@dataclass
class Account:
    """What one feature paid for in this run (answers from the ledger add nothing)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: list[LedgerEntry] = field(default_factory=list)

    def add(self, entry: LedgerEntry) -> None:
        self.prompt_tokens += entry.prompt_tokens
        self.completion_tokens += entry.completion_tokens
        self.cost_usd += entry.cost_usd
        self.calls.append(entry)


current_account: ContextVar[Account | None] = ContextVar("current_account", default=None)


def estimate_prompt_tokens(request: ChatRequest) -> int:
    return request.prompt_chars // CHARS_PER_TOKEN + 8 * len(request.messages)


@dataclass
class Budget:
    """Limits of one job and what it has spent: elsewhere (before this worker started, or by other workers
    of the job, as far as SQL shows; see `resync`) plus what this worker paid itself.

    Each half has one writer: `spend` (the event loop) adds to `paid_*`, `resync` (the thread that writes
    results) replaces `elsewhere_*`, so neither loses the other's update.
    """

    max_prompt_tokens: int | None = None
    max_cost_usd: float | None = None
    elsewhere_prompt_tokens: int = 0
    elsewhere_cost_usd: float = 0.0
    reserved_prompt_tokens: int = 0
    reserved_cost_usd: float = 0.0
    exhausted: bool = False
    paid_prompt_tokens: int = 0
    paid_cost_usd: float = 0.0

    @property
    def spent_prompt_tokens(self) -> int:
        return self.elsewhere_prompt_tokens + self.paid_prompt_tokens

    @property
    def spent_cost_usd(self) -> float:
        return self.elsewhere_cost_usd + self.paid_cost_usd

    @property
    def unlimited(self) -> bool:
        return self.max_prompt_tokens is None and self.max_cost_usd is None

    def reserve(self, prompt_tokens: int, cost_usd: float) -> None:
        """Hold room for one call or raise BudgetExceededError (and stay exhausted from then on)."""
        if self.unlimited:
            return
        over = None
        if self.exhausted:
            over = "already spent"
        elif self.max_prompt_tokens is not None and (
            self.spent_prompt_tokens + self.reserved_prompt_tokens + prompt_tokens > self.max_prompt_tokens
        ):
            over = f"{self.spent_prompt_tokens} of {self.max_prompt_tokens} prompt tokens used"
        elif self.max_cost_usd is not None and self.spent_cost_usd + self.reserved_cost_usd + cost_usd > self.max_cost_usd:
            over = f"${self.spent_cost_usd:.4f} of ${self.max_cost_usd:.4f} used"
        if over is not None:
            self.exhausted = True
            raise BudgetExceededError(
                f"the job's LLM budget is spent ({over}); unfinished features stay pending. "
                "Raise max_prompt_tokens / max_cost_usd in the job's label config and resume the job."
            )
        self.reserved_prompt_tokens += prompt_tokens
        self.reserved_cost_usd += cost_usd

    def release(self, prompt_tokens: int, cost_usd: float) -> None:
        if self.unlimited:
            return
        self.reserved_prompt_tokens -= prompt_tokens
        self.reserved_cost_usd -= cost_usd

    def spend(self, prompt_tokens: int, cost_usd: float) -> None:
        self.paid_prompt_tokens += prompt_tokens
        self.paid_cost_usd += cost_usd

    def resync(self, *, job_prompt_tokens: int, job_cost_usd: float, written_prompt_tokens: int, written_cost_usd: float) -> None:
        """The job's totals in SQL (every worker's written calls, ours included) less what we wrote of ours:
        the rest of the job's spending."""
        self.elsewhere_prompt_tokens = job_prompt_tokens - written_prompt_tokens
        self.elsewhere_cost_usd = job_cost_usd - written_cost_usd
