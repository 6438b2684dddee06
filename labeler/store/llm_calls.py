"""Rows of `llm_calls`, the cache and ledger of LLM requests, and the job totals derived from them.

Reads and writes are in bulk: one SELECT for a batch's request hashes, one insert-or-ignore for the calls
a batch paid for. The first row for a request hash wins: a request is paid for once, whoever asks again.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from labeler.llm.request import LedgerEntry
from labeler.store.models import Job, LLMCall

HASHES_PER_QUERY = 5000  # keeps IN (...) well under SQLite's bound-parameter limit


def load_llm_calls(session: Session, *, request_hashes: Sequence[str]) -> dict[str, LedgerEntry]:
    """Stored answers among these hashes (absent hashes are simply missing from the result)."""
    found: dict[str, LedgerEntry] = {}
    hashes = list(dict.fromkeys(request_hashes))
    for start in range(0, len(hashes), HASHES_PER_QUERY):
        rows = session.execute(
            select(
                LLMCall.request_hash,
                LLMCall.job_id,
                LLMCall.model,
                LLMCall.prompt_tokens,
                LLMCall.completion_tokens,
                LLMCall.latency_s,
                LLMCall.cost_usd,
                LLMCall.attempts,
                LLMCall.response,
            ).where(LLMCall.request_hash.in_(hashes[start : start + HASHES_PER_QUERY]))
        )
        for r in rows:
            found[r.request_hash] = LedgerEntry(
                request_hash=r.request_hash,
                model=r.model,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                latency_s=r.latency_s,
                cost_usd=r.cost_usd,
                attempts=r.attempts,
                response=r.response,
                job_id=r.job_id,
            )
    return found


def upsert_llm_calls(session: Session, *, entries: Sequence[LedgerEntry]) -> None:
    """Record paid calls; a hash already stored keeps its first row (insert-or-ignore).

    One statement executed for many rows (SQLAlchemy batches it as "insertmanyvalues" and caches its
    compiled form): building one literal multi-VALUES statement per batch cost ~1 s per 1000 calls here.
    """
    rows = [
        {
            "request_hash": e.request_hash,
            "job_id": e.job_id,
            "model": e.model,
            "prompt_tokens": e.prompt_tokens,
            "completion_tokens": e.completion_tokens,
            "latency_s": e.latency_s,
            "cost_usd": e.cost_usd,
            "attempts": e.attempts,
            "response": e.response,
        }
        for e in {e.request_hash: e for e in entries}.values()
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    session.execute(insert(LLMCall.__table__).on_conflict_do_nothing(index_elements=["request_hash"]), rows)


def job_llm_usage(session: Session, *, job_id: int) -> tuple[int, int, float]:
    """(prompt tokens, completion tokens, cost USD) the job has paid for, from the ledger."""
    row = session.execute(
        select(
            func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
            func.coalesce(func.sum(LLMCall.completion_tokens), 0),
            func.coalesce(func.sum(LLMCall.cost_usd), 0.0),
        ).where(LLMCall.job_id == job_id)
    ).one()
    return int(row[0]), int(row[1]), float(row[2])


def update_job_llm_totals(session: Session, *, job_id: int) -> None:
    """Set jobs.prompt_tokens / completion_tokens / cost_usd from the ledger: recomputed, so idempotent."""
    prompt_tokens, completion_tokens, cost_usd = job_llm_usage(session, job_id=job_id)
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost_usd)
    )
