"""Thin shells around the pipeline: build a job's LLM context from settings, write results through the store."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

from sqlalchemy.orm import Session

from labeler.config import LabelConfig
from labeler.errors import ConfigError, NotFoundError
from labeler.label.pipeline import PENDING, FeatureLabelResult
from labeler.llm import Budget, ClientOptions, Endpoint, Ledger, LedgerEntry, LLMContext, Prices
from labeler.settings import Settings, get_settings
from labeler.store.db import session_scope
from labeler.store.features import feature_ids
from labeler.store.labels import set_label_states, upsert_labels, upsert_scores
from labeler.store.llm_calls import job_llm_usage, load_llm_calls, update_job_llm_totals, upsert_llm_calls


def llm_context_for(
    config: LabelConfig,
    *,
    job_id: int | None = None,
    settings: Settings | None = None,
    database_url: str | None = None,
) -> LLMContext | None:
    """The job's LLM context from settings, its ledger backed by `llm_calls`; None when no endpoint is set.

    The budget starts from what the job already paid (a resumed job keeps counting where it stopped).
    """
    settings = settings or get_settings()
    if not settings.llm_enabled:
        if config.explainer == "llm":
            raise ConfigError(
                "explainer 'llm' needs an endpoint: set LABELER_LLM_BASE_URL (or LABELER_EXPLAIN_BASE_URL), "
                "or use explainer 'auto' / 'offline'"
            )
        return None
    explain = settings.llm_stage("explain")
    score = settings.llm_stage("score")
    explain_endpoint = Endpoint(explain.base_url, explain.api_key, config.explain_model or explain.model)
    score_endpoint = Endpoint(
        score.base_url or explain.base_url,
        score.api_key if score.base_url else explain.api_key,
        config.score_model or score.model,
    )

    def load(hashes):
        with session_scope(database_url) as session:
            return load_llm_calls(session, request_hashes=hashes)

    spent_tokens, spent_cost = 0, 0.0
    if job_id is not None and (config.max_prompt_tokens is not None or config.max_cost_usd is not None):
        with session_scope(database_url) as session:
            spent_tokens, _, spent_cost = job_llm_usage(session, job_id=job_id)
    return LLMContext.create(
        explain=explain_endpoint,
        score=score_endpoint,
        options=ClientOptions(
            concurrency=settings.llm_concurrency,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            prices=Prices(settings.llm_price_prompt_per_mtok, settings.llm_price_completion_per_mtok),
        ),
        ledger=Ledger(loader=load, job_id=job_id),
        budget=Budget(
            max_prompt_tokens=config.max_prompt_tokens,
            max_cost_usd=config.max_cost_usd,
            elsewhere_prompt_tokens=spent_tokens,
            elsewhere_cost_usd=spent_cost,
        ),
    )


def persist_label_results(
    session: Session, *, sae_id: int, job_id: int | None, results: Sequence[FeatureLabelResult]
) -> None:
    """Write paid calls, candidates, scores and label states in the caller's transaction (all upserts).

    Pending features (budget spent) keep their state; only the calls they paid for are written, so a
    resumed job gets those answers from the ledger instead of paying again.
    """
    upsert_llm_calls(session, entries=[e for r in results for e in r.llm_calls])
    ids = feature_ids(session, sae_id=sae_id, feature_indices=[r.feature_index for r in results])
    missing = sorted({r.feature_index for r in results} - set(ids))
    if missing:
        raise NotFoundError(f"features {missing[:10]} of SAE {sae_id} are not stored; run the activation pass first")
    done = [r for r in results if r.status != PENDING]
    candidates = [c for r in done for c in r.candidates]
    label_ids = upsert_labels(session, feature_ids=ids, candidates=candidates, job_id=job_id)
    scores, offset = [], 0
    for r in done:
        scores += [(label_ids[offset + pos], result) for pos, result in r.scores]
        offset += len(r.candidates)
    upsert_scores(session, results=scores)
    set_label_states(session, states={ids[r.feature_index]: (r.status, r.error) for r in done})
    if job_id is not None:
        update_job_llm_totals(session, job_id=job_id)


class BatchWriter:
    """The `sink` of one batch (`label_features`): writes finished features and paid calls as they come,
    and keeps the batch's budget in step with what every worker of the job has written, so parallel
    workers stop near the job's budget instead of each spending up to it. `after(session)` runs in the
    features' transaction (job progress)."""

    def __init__(
        self,
        *,
        sae_id: int,
        job_id: int | None,
        budget: Budget | None = None,
        database_url: str | None = None,
        after: Callable[[Session], Any] | None = None,
    ) -> None:
        self.sae_id, self.job_id, self.budget = sae_id, job_id, budget
        self.database_url, self.after = database_url, after
        self._written: dict[str, tuple[int, float]] = {}  # request hash -> (prompt tokens, cost) stored

    def write_features(self, results: Sequence[FeatureLabelResult]) -> None:
        fresh = [e for r in results for e in r.llm_calls if e.request_hash not in self._written]
        with session_scope(self.database_url) as session:
            upsert_llm_calls(session, entries=fresh)  # the rest went out with write_calls already
            persist_label_results(
                session, sae_id=self.sae_id, job_id=self.job_id, results=[replace(r, llm_calls=()) for r in results]
            )
            self._resync(session, fresh)
            if self.after is not None:
                self.after(session)

    def write_calls(self, entries: Sequence[LedgerEntry]) -> None:
        with session_scope(self.database_url) as session:
            upsert_llm_calls(session, entries=entries)
            self._resync(session, entries)

    def _resync(self, session: Session, written: Sequence[LedgerEntry]) -> None:
        for e in written:
            self._written[e.request_hash] = (e.prompt_tokens, e.cost_usd)
        if self.job_id is None or self.budget is None or self.budget.unlimited:
            return
        job_tokens, _, job_cost = job_llm_usage(session, job_id=self.job_id)
        self.budget.resync(
            job_prompt_tokens=job_tokens,
            job_cost_usd=job_cost,
            written_prompt_tokens=sum(t for t, _ in self._written.values()),
            written_cost_usd=sum(c for _, c in self._written.values()),
        )
