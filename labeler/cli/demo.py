"""`labeler demo`: the whole pipeline on the bundled model, SAE and corpus, with nothing else running."""

from __future__ import annotations

import threading
from typing import Optional

import typer
from rich.panel import Panel
from rich.table import Table

from labeler import jobs
from labeler.cli.jobs import console, parse_features, watch_jobs
from labeler.config import ActivationConfig, JobConfig, LabelConfig
from labeler.errors import LabelerError
from labeler.settings import get_settings

DEMO_N_TOKENS = 65_536
DEMO_FEATURES = "0-63"  # the default stays within a few minutes on 2 CPU cores; "all" labels all 3072

EXAMPLE_SQL = """\
-- every labelled feature, best embedding score first
SELECT feature_index, label, label_source, embedding, detection, density
FROM feature_labels WHERE sae_id = {sae_id} ORDER BY embedding DESC;
-- the review queue
SELECT feature_index, reasons, priority FROM disputed_features
WHERE sae_id = {sae_id} AND status = 'open' ORDER BY priority DESC;"""


def demo(
    n_tokens: int = typer.Option(DEMO_N_TOKENS, help="Tokens of the built-in corpus to read."),
    features: str = typer.Option(DEMO_FEATURES, help="Features to label, e.g. '0-255', or 'all'."),
    show: int = typer.Option(25, help="Rows of the result table."),
) -> None:
    """Label the demo SAE (MiniLM layer 3, offline corpus) end to end and show the result."""
    from labeler.demo import DEMO_DATASET, DEMO_MODEL, DEMO_SAE_PATH

    settings = get_settings()
    offline = not settings.llm_enabled
    console.print(
        Panel.fit(
            f"database: {settings.resolved_database_url}\n"
            f"broker:   {settings.broker_url or 'none — tasks run in this process'}\n"
            + (
                "labels:   [yellow]OFFLINE[/] — no LLM endpoint is set (LABELER_LLM_BASE_URL), so labels come from the "
                "offline token-lift explainer and are scored by the MiniLM embedding scorer; they are stored with "
                "source = 'offline'."
                if offline
                else f"labels:   LLM at {settings.llm_base_url}"
            ),
            title="sae-labeler demo",
        )
    )
    config = JobConfig(
        activation=ActivationConfig(n_tokens=n_tokens),
        label=LabelConfig(scorers=("embedding",) if offline else LabelConfig().scorers),
        feature_indices=parse_features(features),
    )
    if config.feature_indices is not None:
        console.print(f"labelling {len(config.feature_indices)} features (all activation statistics are computed); "
                      "`labeler demo --features all` labels every feature")
    request = jobs.SubmitRequest(sae_path=[str(DEMO_SAE_PATH)], model=DEMO_MODEL, dataset=DEMO_DATASET, config=config)

    if settings.broker_url:
        submission = jobs.submit(request)
    else:
        submission = _submit_in_background(request)
    views = watch_jobs(list(submission.job_ids))
    if any(v.status != "done" for v in views):
        raise typer.Exit(1)
    _print_results(views[0].sae_id, show)


def _submit_in_background(request: jobs.SubmitRequest) -> jobs.Submission:
    """In-process mode runs the job inside submit(); run it in a thread so progress can be watched here."""
    from labeler.store.db import get_engine

    get_engine()  # migrate the embedded database before two threads touch it
    ready = threading.Event()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["submission"] = jobs.submit(request, on_queued=lambda s: (outcome.update(submission=s), ready.set()))
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc
        finally:
            ready.set()

    worker = threading.Thread(target=run, name="labeler-demo", daemon=True)
    worker.start()
    ready.wait()
    if "error" in outcome:
        raise _exit_with(outcome["error"])
    return outcome["submission"]


def _exit_with(exc: BaseException) -> BaseException:
    if isinstance(exc, LabelerError):
        console.print(f"[red]demo failed:[/] {exc}")
        return typer.Exit(1)
    return exc


def _print_results(sae_id: int, show: int) -> None:
    from labeler.store.db import session_scope
    from labeler.store.queries import find_feature_labels

    with session_scope() as session:
        rows = find_feature_labels(session, sae_id=sae_id, limit=100_000)
    rows.sort(key=lambda r: -(r.scores.get("embedding") or 0.0))
    methods = [m for m in ("embedding", "detection", "fuzzing", "simulation") if any(r.scores.get(m) is not None for r in rows)]
    table = Table("feature", "label", "source", *methods, "density", title=f"{len(rows)} labelled features (best {min(show, len(rows))})")
    for r in rows[:show]:
        scores = [f"{r.scores[m]:.2f}" if r.scores.get(m) is not None else "" for m in methods]
        table.add_row(str(r.feature_index), r.label or "", r.source or "", *scores, f"{r.density:.4f}")
    console.print(table)
    console.print("Query them yourself (sqlite3 / psql on the database above):")
    console.print(EXAMPLE_SQL.format(sae_id=sae_id), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(demo)
