"""What the CLI, the web app and Python callers do with jobs: submit, watch, cancel, resume, relabel.

`submit` validates every input (model loads, hook exists, d_in matches, dataset yields tokens, feature
indices in range) before a single row is written or a message queued, then writes the whole
submission in one transaction. Work goes to Celery when a broker is configured, else runs in-process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labeler import pipeline
from labeler.config import JobConfig
from labeler.errors import ConfigError
from labeler.settings import get_settings
from labeler.store import jobs as store_jobs
from labeler.store.db import session_scope
from labeler.store.jobs import JobView
from labeler.store.sources import upsert_dataset, upsert_sae, upsert_sequences, upsert_vocab


class SubmitRequest(BaseModel):
    """One submission: one model and dataset, one or more SAEs (they share a forward pass)."""

    model_config = ConfigDict(extra="forbid")

    sae: list[str] = Field(default_factory=list, description="sae_lens release/sae_id, e.g. gpt2-small-res-jb/blocks.8.hook_resid_pre")
    sae_path: list[str] = Field(default_factory=list, description="Local sae_lens folders (cfg.json + weights).")
    model: str = Field(default="minilm", description="Model name or local path; 'minilm' is the offline demo model.")
    hook: str | None = Field(default=None, description="Hook to read; default: the SAE's own hook_name.")
    dataset: str = Field(default="builtin", description="builtin | local .txt/.jsonl/.parquet file or folder | hf:NAME")
    config: JobConfig = Field(default_factory=JobConfig)

    @field_validator("sae", "sae_path", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _needs_an_sae(self) -> "SubmitRequest":
        if not self.sae and not self.sae_path:
            raise ValueError("give at least one SAE: sae (release/sae_id) or sae_path (a local folder)")
        for spec in self.sae:
            if "/" not in spec:
                raise ValueError(f"sae {spec!r} must look like RELEASE/SAE_ID")
        return self


@dataclass(frozen=True)
class Submission:
    submission_id: str
    job_ids: tuple[int, ...]


def _load_saes(request: SubmitRequest) -> list:
    settings = get_settings()
    saes = []
    for spec in request.sae:
        release, sae_id = spec.split("/", 1)
        saes.append(pipeline.cached_sae(None, release, sae_id, settings.device, settings.dtype))
    for path in request.sae_path:
        saes.append(pipeline.cached_sae(str(path), None, None, settings.device, settings.dtype))
    return saes


def submit(request: SubmitRequest, *, on_queued: Callable[[Submission], None] | None = None) -> Submission:
    """Validate everything, write the submission atomically, then queue its shards.

    In-process mode runs the whole job inside this call; `on_queued` hears the job ids before it starts.
    """
    from labeler.sources import load_dataset, validate_sources

    model = pipeline.model_for(request.model)
    saes = _load_saes(request)
    hooks = [validate_sources(model, sae, request.hook) for sae in saes]
    config = request.config
    for sae in saes:
        bad = [i for i in config.feature_indices or () if i >= sae.d_sae]
        if bad:
            raise ConfigError(f"feature indices {bad[:5]} out of range: SAE {sae.name} has {sae.d_sae} features")
    activation = config.activation
    dataset = load_dataset(request.dataset, model, context_size=activation.context_size, n_tokens=activation.n_tokens)
    n_shards = min(activation.n_shards, dataset.n_sequences)
    shards = [dataset.shard(i, n_shards) for i in range(n_shards)]

    submission_id = str(uuid.uuid4())
    with session_scope() as session:
        dataset_id = upsert_dataset(session, **dataset.store_fields())
        upsert_vocab(session, tokenizer=model.tokenizer_name, vocab=model.vocab())
        upsert_sequences(session, dataset_id=dataset_id, sequences=dict(enumerate(dataset.tokens.numpy())))
        job_ids = []
        for sae, hook in zip(saes, hooks):
            fields = sae.store_fields(request.model) | {"hook_name": hook}
            sae_id = upsert_sae(session, **fields)
            job_ids.append(
                store_jobs.create_job(
                    session,
                    submission_id=submission_id,
                    sae_id=sae_id,
                    dataset_id=dataset_id,
                    config=config.model_dump(mode="json"),
                    shards=shards,
                    n_tokens=dataset.n_tokens,
                )
            )
    submission = Submission(submission_id=submission_id, job_ids=tuple(job_ids))
    if on_queued is not None:
        on_queued(submission)
    _dispatch([pipeline.Work("cache_shard", (submission_id, i), "gpu") for i in range(n_shards)])
    return submission


def _dispatch(work: list[pipeline.Work]) -> None:
    from workers.dispatch import dispatch

    dispatch(work)


def cancel_job(job_id: int) -> None:
    """Stop a job: queued tasks see the status and do nothing; finished results stay."""
    with session_scope() as session:
        store_jobs.get_job(session, job_id)
        store_jobs.advance_job(session, job_id=job_id, from_status=store_jobs.ACTIVE, to_status="cancelled")


def resume_job(job_id: int) -> list[pipeline.Work]:
    """Re-enqueue exactly what SQL says is unfinished (after a crash, a lost broker, a spent budget)."""
    work = pipeline.unfinished_work(job_id)
    _dispatch(work)
    return work


def request_relabel(*, feature_id: int, explain_model: str | None = None) -> None:
    from workers import tasks
    from workers.app import configured_app

    configured_app()
    tasks.relabel_feature.apply_async(args=[feature_id, explain_model], queue="llm")


def try_text(*, sae_id: int, feature_index: int, text: str, timeout_s: float = 120.0) -> list[tuple[str, float]]:
    if get_settings().broker_url is None:
        return pipeline.try_text(sae_id=sae_id, feature_index=feature_index, text=text)
    from workers import tasks
    from workers.app import configured_app

    configured_app()
    result = tasks.try_text.apply_async(args=[sae_id, feature_index, text], queue="gpu")
    return [tuple(pair) for pair in result.get(timeout=timeout_s)]


def job_views(session=None, *, job_ids: list[int] | None = None) -> list[JobView]:
    if session is not None:
        return store_jobs.job_views(session, job_ids=job_ids)
    with session_scope() as own:
        return store_jobs.job_views(own, job_ids=job_ids)
