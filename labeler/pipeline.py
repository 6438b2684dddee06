"""The job's stages as plain functions over SQL state; Celery tasks (workers/) are thin shells around them.

Each step reads what it needs through the store, does its work, writes results idempotently, and
returns the `Work` that should run next. It never enqueues anything itself: the shell does, after the
step's transaction has committed, so a crash in between leaves SQL saying exactly what is unfinished
(`labeler resume` re-enqueues it).

    cache_shard(submission, shard) --all shards of a job done--> merge(job)
    merge(job) --> label_batch(job, features) x N --all labelled--> finalize(job) --> done
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
import threading
from typing import Callable, Sequence

import torch

from labeler.cache import load_once
from labeler.config import JobConfig
from labeler.settings import get_settings
from labeler.store import jobs as store_jobs
from labeler.store.db import session_scope
from labeler.store.features import load_feature_examples
from labeler.store.models import SAE, Dataset
from labeler.store.sources import load_sequence_range

LABEL_BATCH_FEATURES = 256  # features per llm task: 4 x the default concurrency keeps every slot busy
PROGRESS_EVERY_S = 1.0
# One forward pass at a time per process: a model's capture hook serves one caller, and a worker
# consuming both queues with threads must not run two shards on the same model at once.
MODEL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Work:
    """One task to enqueue: a step name, its arguments (ids only) and the queue it belongs on."""

    step: str
    args: tuple
    queue: str


@load_once(maxsize=2)
def cached_model(name: str, device: str, dtype: str):
    from labeler.sources import load_model

    return load_model(name, device=device, dtype=dtype)


@load_once(maxsize=8)
def cached_sae(path: str | None, release: str | None, sae_id: str | None, device: str, dtype: str):
    from labeler.sources import load_sae

    return load_sae(path=path, release=release, sae_id=sae_id, device=device, dtype=dtype)


def sae_from_row(row: SAE):
    settings = get_settings()
    return cached_sae(row.path, row.release, row.sae_id, settings.device, settings.dtype)


def model_for(name: str):
    settings = get_settings()
    return cached_model(name, settings.device, settings.dtype)


def job_config(job) -> JobConfig:
    return JobConfig.model_validate(job.config)


def cache_shard(submission_id: str, shard_index: int) -> list[Work]:
    """Run one dataset shard through the model once, for every SAE of the submission that still needs it."""
    from labeler.activations import cache_shard as run_pass

    with session_scope() as session:
        jobs = [j for j in store_jobs.submission_jobs(session, submission_id) if j.status in ("queued", "caching")]
        todo = [j for j in jobs if shard_index in store_jobs.pending_shard_indices(session, j.id)]
        if not todo:
            return _jobs_ready_to_merge(submission_id)
        for job in todo:
            store_jobs.advance_job(session, job_id=job.id, from_status="queued", to_status="caching")
        shard = next(s for s in store_jobs.shards(session, todo[0].id) if s.shard_index == shard_index)
        seq_start, seq_stop = shard.seq_start, shard.seq_stop
        dataset_id = todo[0].dataset_id
        tokens = torch.from_numpy(load_sequence_range(session, dataset_id=dataset_id, seq_start=seq_start, seq_stop=seq_stop))
        sae_rows = [session.get(SAE, j.sae_id) for j in todo]
        job_ids = [j.id for j in todo]
        config = job_config(todo[0]).activation
        tokens_before = {j.id: _cached_tokens(session, j.id) for j in todo}

    model = model_for(sae_rows[0].model_name)
    saes = [sae_from_row(r) for r in sae_rows]
    report = _throttled_progress(job_ids, "caching", tokens_before)
    with MODEL_LOCK:
        summaries = run_pass(model, saes, tokens, seq_offset=seq_start, config=config, progress=report)

    with session_scope() as session:
        for job_id, summary in zip(job_ids, summaries):
            store_jobs.save_shard_summary(session, job_id=job_id, shard_index=shard_index, summary=summary.to_bytes())
            store_jobs.set_progress(session, job_id=job_id, stage="caching", done=_cached_tokens(session, job_id))
    return _jobs_ready_to_merge(submission_id)


def _cached_tokens(session, job_id: int) -> int:
    return sum(
        (s.seq_stop - s.seq_start) * _context_size(session, job_id)
        for s in store_jobs.shards(session, job_id)
        if s.status == "done"
    )


def _context_size(session, job_id: int) -> int:
    job = store_jobs.get_job(session, job_id)
    return session.get(Dataset, job.dataset_id).context_size


def _throttled_progress(job_ids: Sequence[int], stage: str, base: dict[int, int]) -> Callable[[int, int], None]:
    """A progress callback that writes to SQL at most once per PROGRESS_EVERY_S (set, never increment)."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and done < total:
            return
        last[0] = now
        with session_scope() as session:
            for job_id in job_ids:
                store_jobs.set_progress(session, job_id=job_id, stage=stage, done=base[job_id] + done)

    return report


def _jobs_ready_to_merge(submission_id: str) -> list[Work]:
    work = []
    with session_scope() as session:
        for job in store_jobs.submission_jobs(session, submission_id):
            done, total = store_jobs.count_done_shards(session, job.id)
            if done == total and store_jobs.advance_job(
                session, job_id=job.id, from_status=("queued", "caching"), to_status="merging"
            ):
                work.append(Work("merge", (job.id,), "gpu"))
    return work


def merge(job_id: int) -> list[Work]:
    """Merge the shard summaries exactly, select every feature's examples, and persist them."""
    from labeler.activations import ShardSummary, merge_summaries, persist_features, select_examples

    with session_scope() as session:
        job = store_jobs.get_job(session, job_id)
        if job.status != "merging":
            return []
        config = job_config(job)
        blobs = store_jobs.shard_summaries(session, job_id)
        sae_id, dataset_id = job.sae_id, job.dataset_id
    summary = merge_summaries([ShardSummary.from_bytes(b) for b in blobs])
    drafts = select_examples(summary, config.activation)
    if config.feature_indices is not None:
        wanted = set(config.feature_indices)
        drafts = [d for d in drafts if d.stats.feature_index in wanted]

    with session_scope() as session:
        persist_features(session, sae_id=sae_id, dataset_id=dataset_id, job_id=job_id, drafts=drafts, sequences={})
        store_jobs.reset_label_state(session, job_id=job_id)
        live = store_jobs.job_feature_indices(session, job_id=job_id)
        store_jobs.set_progress(session, job_id=job_id, stage="merging", done=1, total=1)
        store_jobs.set_progress(session, job_id=job_id, stage="explaining", done=0, total=len(live))
        store_jobs.set_progress(session, job_id=job_id, stage="scoring", done=0, total=len(live))
        if not store_jobs.advance_job(session, job_id=job_id, from_status="merging", to_status="explaining"):
            return []
    return label_batches(job_id, live) or [Work("finalize", (job_id,), "llm")]


def label_batches(job_id: int, feature_indices: Sequence[int]) -> list[Work]:
    return [
        Work("label_batch", (job_id, tuple(feature_indices[i : i + LABEL_BATCH_FEATURES])), "llm")
        for i in range(0, len(feature_indices), LABEL_BATCH_FEATURES)
    ]


def label_batch(job_id: int, feature_indices: Sequence[int], explain_model: str | None = None) -> list[Work]:
    """Explain and score the still-pending features of one batch; the last batch advances the job."""
    from labeler.label import BatchWriter, label_features, llm_context_for

    with session_scope() as session:
        job = store_jobs.get_job(session, job_id)
        if job.status != "explaining":
            return []
        config = job_config(job)
        pending = set(store_jobs.job_feature_indices(session, job_id=job_id, label_state="pending"))
        todo = [i for i in feature_indices if i in pending]
        sae = session.get(SAE, job.sae_id)
        tokenizer = session.get(Dataset, job.dataset_id).tokenizer
        features = load_feature_examples(session, sae_id=sae.id, feature_indices=todo, tokenizer=tokenizer)

    if features:
        label_config = config.label
        if explain_model:
            label_config = label_config.model_copy(update={"explain_model": explain_model})
        llm = llm_context_for(label_config, job_id=job_id)
        write = BatchWriter(  # a chunk at a time, while the rest of the batch is in flight
            sae_id=sae.id,
            job_id=job_id,
            budget=llm.budget if llm is not None else None,
            after=lambda session: _label_progress(session, job_id, count_scored=False),  # scoring count: a join, once below
        )
        asyncio.run(label_features(features, config=label_config, llm=llm, sink=write))

    with session_scope() as session:
        remaining = _label_progress(session, job_id)
        if not remaining and store_jobs.advance_job(session, job_id=job_id, from_status="explaining", to_status="scoring"):
            return [Work("finalize", (job_id,), "llm")]
    return []


def _label_progress(session, job_id: int, *, count_scored: bool = True) -> int:
    """Refresh the explaining (and scoring) counters from the feature states; returns how many are pending."""
    remaining = store_jobs.count_job_features(session, job_id=job_id, label_state="pending")
    total = store_jobs.count_job_features(session, job_id=job_id)
    store_jobs.set_progress(session, job_id=job_id, stage="explaining", done=total - remaining)
    if count_scored:
        store_jobs.set_progress(session, job_id=job_id, stage="scoring", done=store_jobs.count_scored_features(session, job_id=job_id))
    return remaining


def finalize(job_id: int) -> list[Work]:
    """Pick current labels and evaluate dispute rules over the whole SAE (collisions need every label)."""
    from labeler.store.disputes import evaluate_and_store_disputes

    with session_scope() as session:
        job = store_jobs.get_job(session, job_id)
        if job.status not in ("explaining", "scoring"):
            return []
        store_jobs.advance_job(session, job_id=job_id, from_status="explaining", to_status="scoring")
        config = job_config(job)
        evaluate_and_store_disputes(session, sae_id=job.sae_id, config=config.label)
        store_jobs.advance_job(session, job_id=job_id, from_status="scoring", to_status="done")
    return []


def relabel_feature(feature_id: int, explain_model: str | None = None) -> None:
    """A reviewer asked for new candidates (optionally from another model): explain, score, re-evaluate."""
    from labeler.label import label_features, llm_context_for, persist_label_results
    from labeler.store.disputes import evaluate_and_store_disputes
    from labeler.store.models import Feature, Job

    with session_scope() as session:
        feature = session.get(Feature, feature_id)
        if feature is None:
            from labeler.errors import NotFoundError

            raise NotFoundError(f"feature {feature_id} does not exist")
        job = session.get(Job, feature.job_id) if feature.job_id else None
        config = job_config(job) if job else JobConfig()
        tokenizer = session.get(Dataset, feature.dataset_id).tokenizer
        features = load_feature_examples(
            session, sae_id=feature.sae_id, feature_indices=[feature.feature_index], tokenizer=tokenizer
        )
        sae_id, job_id, feature_index = feature.sae_id, feature.job_id, feature.feature_index
    label_config = config.label
    if explain_model:
        label_config = label_config.model_copy(update={"explain_model": explain_model, "explainer": "llm"})
    llm = llm_context_for(label_config, job_id=job_id)
    results = asyncio.run(label_features(features, config=label_config, llm=llm))
    with session_scope() as session:
        persist_label_results(session, sae_id=sae_id, job_id=job_id, results=results)
        evaluate_and_store_disputes(session, sae_id=sae_id, config=label_config, feature_indices=[feature_index])


def try_text(*, sae_id: int, feature_index: int, text: str) -> list[tuple[str, float]]:
    """Per-token activations of one feature on any text: tokenized like the dataset (special token first)."""
    from labeler.activations import feature_activations_on_tokens

    with session_scope() as session:
        row = session.get(SAE, sae_id)
        if row is None:
            from labeler.errors import NotFoundError

            raise NotFoundError(f"SAE {sae_id} does not exist")
        model_name = row.model_name
        sae = sae_from_row(row)
    model = model_for(model_name)
    if not 0 <= feature_index < sae.d_sae:
        from labeler.errors import ConfigError

        raise ConfigError(f"feature {feature_index} out of range; the SAE has {sae.d_sae} features")
    token_ids = text_to_token_ids(model, text)
    with MODEL_LOCK:
        acts = feature_activations_on_tokens(model, sae, token_ids)[:, feature_index]
    vocab = model.vocab()
    return [(vocab.get(int(t), f"<{int(t)}>"), float(a)) for t, a in zip(token_ids.tolist(), acts.tolist())]


TRY_TEXT_MAX_TOKENS = 512


def text_to_token_ids(model, text: str) -> torch.Tensor:
    """The start token, then the text's tokens (no other specials), as sequences are built from datasets."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"][: TRY_TEXT_MAX_TOKENS - 1]
    start = model.start_token_id()
    return torch.tensor(([start] if start is not None else []) + list(ids), dtype=torch.long)


STEPS: dict[str, Callable[..., list[Work]]] = {
    "cache_shard": cache_shard,
    "merge": merge,
    "label_batch": label_batch,
    "finalize": finalize,
}


def unfinished_work(job_id: int) -> list[Work]:
    """What SQL says is not done for this job: the work `labeler resume` re-enqueues."""
    with session_scope() as session:
        job = store_jobs.get_job(session, job_id)
        status = job.status
        if status in ("done", "cancelled"):
            return []
        if status == "failed":
            status = _stage_from_data(session, job_id)
            store_jobs.advance_job(session, job_id=job_id, from_status="failed", to_status=status)
            session.get(type(job), job_id).error = None
        if status in ("queued", "caching"):
            return [Work("cache_shard", (job.submission_id, i), "gpu") for i in store_jobs.pending_shard_indices(session, job_id)] or [
                Work("cache_shard", (job.submission_id, 0), "gpu")
            ]
        if status == "merging":
            return [Work("merge", (job_id,), "gpu")]
        if status == "explaining":
            pending = store_jobs.job_feature_indices(session, job_id=job_id, label_state="pending")
            return label_batches(job_id, pending) or [Work("finalize", (job_id,), "llm")]
        return [Work("finalize", (job_id,), "llm")]


def _stage_from_data(session, job_id: int) -> str:
    done, total = store_jobs.count_done_shards(session, job_id)
    if done < total:
        return "caching"
    if not store_jobs.job_feature_indices(session, job_id=job_id, live_only=False):
        return "merging"
    if store_jobs.job_feature_indices(session, job_id=job_id, label_state="pending"):
        return "explaining"
    return "scoring"
