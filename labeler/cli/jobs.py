"""`labeler submit | status | cancel | resume | worker | demo`: parse, call labeler.jobs, print."""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labeler import jobs
from labeler.config import ActivationConfig, JobConfig, LabelConfig
from labeler.errors import LabelerError
from labeler.settings import get_settings
from labeler.store.jobs import FINISHED, STAGES, JobView

console = Console()


def parse_features(spec: str | None) -> tuple[int, ...] | None:
    """'0-99,200,300-310' -> indices; None or 'all' = every feature."""
    if not spec or spec.strip().lower() == "all":
        return None
    indices: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            indices.extend(range(int(lo), int(hi) + 1))
        elif part:
            indices.append(int(part))
    return tuple(sorted(set(indices)))


def submit(
    sae: list[str] = typer.Option([], "--sae", help="sae_lens RELEASE/SAE_ID (repeat for several SAEs)."),
    sae_path: list[str] = typer.Option([], "--sae-path", help="Local sae_lens folder (repeatable)."),
    model: str = typer.Option("minilm", help="Model name or path; 'minilm' is the offline demo model."),
    hook: Optional[str] = typer.Option(None, help="Hook name; default the SAE's hook_name."),
    dataset: str = typer.Option("builtin", help="builtin | FILE/DIR (.txt .jsonl .parquet) | hf:NAME[:split]"),
    n_tokens: int = typer.Option(ActivationConfig().n_tokens, help="Tokens to read."),
    context_size: int = typer.Option(ActivationConfig().context_size),
    batch_size: int = typer.Option(ActivationConfig().batch_size),
    n_shards: int = typer.Option(ActivationConfig().n_shards, help="Dataset shards (gpu tasks)."),
    features: Optional[str] = typer.Option(None, help="Feature subset, e.g. '0-99,512'. Default: all."),
    explainer: str = typer.Option("auto", help="auto | llm | offline"),
    n_candidates: int = typer.Option(LabelConfig().n_candidates),
    explain_model: Optional[str] = typer.Option(None),
    score_model: Optional[str] = typer.Option(None),
    watch: bool = typer.Option(False, "--watch", help="Show live progress until the job ends."),
) -> None:
    """Validate a submission, queue it, print its job ids."""
    config = JobConfig(
        activation=ActivationConfig(n_tokens=n_tokens, context_size=context_size, batch_size=batch_size, n_shards=n_shards),
        label=LabelConfig(explainer=explainer, n_candidates=n_candidates, explain_model=explain_model, score_model=score_model),
        feature_indices=parse_features(features),
    )
    request = _request_or_exit(sae=sae, sae_path=sae_path, model=model, hook=hook, dataset=dataset, config=config)
    try:
        submission = jobs.submit(request)
    except LabelerError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(2) from exc
    for job_id in submission.job_ids:
        console.print(f"job [bold]{job_id}[/] queued (submission {submission.submission_id})")
    if watch:
        watch_jobs(list(submission.job_ids))


def _request_or_exit(**fields) -> jobs.SubmitRequest:
    from pydantic import ValidationError

    try:
        return jobs.SubmitRequest(**fields)
    except ValidationError as exc:
        console.print(f"[red]refused:[/] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc


def watch_jobs(job_ids: list[int], *, until: threading.Event | None = None, poll_s: float = 0.5) -> list[JobView]:
    """Live rich progress bars, one per job and stage, read from SQL until every job has finished."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        tasks: dict[tuple[int, str], int] = {}
        while True:
            views = jobs.job_views(job_ids=job_ids)
            for view in views:
                for stage in STAGES:
                    done, total = view.progress.get(stage, (0, 0))
                    key = (view.id, stage)
                    label = f"job {view.id} {stage:<10}"
                    if key not in tasks:
                        tasks[key] = bars.add_task(label, total=total or None)
                    bars.update(tasks[key], completed=done, total=total or None, description=label)
            if views and all(v.status in FINISHED for v in views):
                break
            if until is not None and until.is_set():
                break
            time.sleep(poll_s)
    for view in jobs.job_views(job_ids=job_ids):
        colour = {"done": "green", "failed": "red", "cancelled": "yellow"}.get(view.status, "white")
        console.print(f"job {view.id}: [{colour}]{view.status}[/]" + (f" — {view.error}" if view.error else ""))
    return views


def status(
    job_id: Optional[int] = typer.Argument(None, help="Job id; default: recent jobs."),
    watch: bool = typer.Option(False, "--watch", help="Live progress bars until the job ends."),
) -> None:
    """Show job status and per-stage progress."""
    if watch:
        ids = [job_id] if job_id is not None else [v.id for v in jobs.job_views() if v.status not in FINISHED]
        if not ids:
            console.print("no running jobs")
            return
        watch_jobs(ids)
        return
    try:
        views = jobs.job_views(job_ids=[job_id] if job_id is not None else None)
    except LabelerError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    if job_id is not None and not views:
        console.print(f"[red]job {job_id} does not exist[/]")
        raise typer.Exit(1)
    table = Table("job", "SAE", "status", *STAGES, "tokens", "cost $", "error")
    for v in views:
        cells = [f"{v.progress.get(s, (0, 0))[0]}/{v.progress.get(s, (0, 0))[1]}" for s in STAGES]
        table.add_row(
            str(v.id), v.sae_name, v.status, *cells, str(v.prompt_tokens + v.completion_tokens), f"{v.cost_usd:.4f}", v.error or ""
        )
    console.print(table)


def cancel(job_id: int) -> None:
    """Cancel a job; work already stored stays."""
    _or_exit(lambda: jobs.cancel_job(job_id))
    console.print(f"job {job_id} cancelled")


def resume(job_id: int, watch: bool = typer.Option(False, "--watch")) -> None:
    """Re-enqueue what SQL says is unfinished for JOB."""
    work = _or_exit(lambda: jobs.resume_job(job_id))
    console.print(f"job {job_id}: re-enqueued {len(work)} task(s): " + ", ".join(sorted({w.step for w in work})) if work else f"job {job_id}: nothing to resume")
    if watch:
        watch_jobs([job_id])


def _or_exit(action):
    try:
        return action()
    except LabelerError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc


def worker(
    queues: str = typer.Option("gpu,llm", help="gpu, llm, or both (comma separated)."),
    concurrency: Optional[int] = typer.Option(None, help="Default: 1 for gpu (one shard at a time), 8 for llm."),
    loglevel: str = typer.Option("INFO"),
) -> None:
    """Start a Celery worker for the given queues (needs LABELER_BROKER_URL), restarted if it dies."""
    if get_settings().broker_url is None:
        console.print("[red]LABELER_BROKER_URL is not set[/]: without a broker every task already runs in-process")
        raise typer.Exit(2)
    from workers.supervise import celery_worker_command, supervise

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(names) - {"gpu", "llm"}
    if unknown:
        console.print(f"[red]unknown queue(s) {sorted(unknown)}[/]; use gpu and/or llm")
        raise typer.Exit(2)
    # gpu work holds a model in memory and may use CUDA, which does not survive fork: one solo process.
    # llm work is I/O bound and async inside: threads share the cached embedding model.
    if names == ["gpu"]:
        pool, default_concurrency = "solo", 1
    else:
        pool, default_concurrency = "threads", 8
    argv = ["worker", "-Q", ",".join(names), f"--pool={pool}", f"--concurrency={concurrency or default_concurrency}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s/Supervisor] %(message)s")
    raise typer.Exit(supervise(celery_worker_command(argv)))


def register(app: typer.Typer) -> None:
    for command in (submit, status, cancel, resume, worker):
        app.command()(command)
