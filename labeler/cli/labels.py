"""`labeler labels | export | import`: search labels, and move them in and out. Parse, call, print."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from labeler import interchange
from labeler.errors import ConfigError, LabelerError
from labeler.store.db import session_scope
from labeler.store.queries import SCORE_METHODS, FeatureLabel, find_feature_labels, resolve_sae

console = Console()
OUTPUT_FORMATS = ("table", "csv", "json")
ROW_FIELDS = ("sae_id", "sae", "feature_index", "label", "source", "method", "model", "status", "is_current",
              *SCORE_METHODS, "density", "is_dead")  # fmt: skip


def _row(hit: FeatureLabel) -> dict[str, Any]:
    values = {name: getattr(hit, name) for name in ROW_FIELDS if name not in SCORE_METHODS}
    return {name: hit.scores[name] if name in SCORE_METHODS else values[name] for name in ROW_FIELDS}


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/]")
    return typer.Exit(1)


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def labels(
    query: Optional[str] = typer.Option(None, "--query", "-q", help="Text the label contains (case-insensitive)."),
    sae: Optional[str] = typer.Option(None, "--sae", help="SAE id or name; default every SAE."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Most rows to print."),
    output: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
    all_features: bool = typer.Option(False, "--all", help="Also list features that have no label."),
) -> None:
    """Search features by label (best detection score first); their label, status and scores."""
    if output not in OUTPUT_FORMATS:
        raise _fail(ConfigError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not {output!r}"))
    try:
        with session_scope() as session:
            sae_id = resolve_sae(session, sae) if sae else None
            hits = find_feature_labels(session, query=query, sae_id=sae_id, limit=limit, include_unlabelled=all_features)
    except LabelerError as exc:
        raise _fail(exc) from exc
    rows = [_row(h) for h in hits]
    if output == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        several_saes = len({h.sae_id for h in hits}) > 1
        table = Table(*(("SAE",) if several_saes else ()), "feature", "label", "status", *SCORE_METHODS, "density",
                      title=None if several_saes or not hits else hits[0].sae)
        for h in hits:
            status = (h.status or "") + (" (current)" if h.is_current else "")
            table.add_row(*((h.sae,) if several_saes else ()), str(h.feature_index), h.label or "[dim]no label[/]",
                          status, *(_score(h.scores[m]) for m in SCORE_METHODS), f"{h.density:.2e}")
        console.print(table)
        if not hits:
            console.print("no labels match" + (f" {query!r}" if query else ""))


def export(
    output: str = typer.Option(..., "--format", "-f", help="neuronpedia | jsonl | csv"),
    out: Path = typer.Option(..., "--out", "-o", help="File (jsonl, csv) or folder (neuronpedia, or labels.<fmt> inside)."),
    sae: Optional[str] = typer.Option(None, "--sae", help="SAE id or name; default every SAE."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="neuronpedia: modelId (default from the model name)."),
    source_id: Optional[str] = typer.Option(None, "--source-id", help="neuronpedia: source id (default e.g. 8-res-jb)."),
) -> None:
    """Write labels with their scores as JSONL or CSV, or in Neuronpedia's export layout."""
    options = {"model_id": model_id, "source_id": source_id} if output == "neuronpedia" else {}
    if output != "neuronpedia" and (model_id or source_id):
        raise _fail(ConfigError("--model-id and --source-id apply to --format neuronpedia only"))
    try:
        with session_scope() as session:
            sae_id = resolve_sae(session, sae) if sae else None
            summary = interchange.export_labels(session, fmt=output, out=out, sae_id=sae_id, **options)
    except LabelerError as exc:
        raise _fail(exc) from exc
    extra = f", {summary.n_features} features, {summary.n_examples} examples" if output == "neuronpedia" else ""
    console.print(f"exported {summary.n_labels} labels{extra} to {', '.join(str(p) for p in summary.paths)}")


def import_labels(
    path: Path = typer.Argument(..., help="File or folder to read."),
    input_format: str = typer.Option(..., "--format", "-f", help="neuronpedia | delphi | jsonl"),
    sae: str = typer.Option(..., "--sae", help="SAE (id or name) whose stored features get the labels."),
    source: Optional[str] = typer.Option(
        None, "--source", help="Which SAE in the file: Neuronpedia source id, delphi module, or SAE name (jsonl)."
    ),
    model: str = typer.Option("", "--model", help="Explainer model to record where the file names none."),
) -> None:
    """Read labels from Neuronpedia, delphi or a JSONL export as label candidates of stored features."""
    try:
        with session_scope() as session:
            sae_id = resolve_sae(session, sae)
            summary = interchange.import_labels(session, fmt=input_format, path=path, sae_id=sae_id, source=source,
                                                model=model)
    except LabelerError as exc:
        raise _fail(exc) from exc
    skipped = f", skipped {summary.n_skipped} empty or failed explanations" if summary.n_skipped else ""
    console.print(f"imported {summary.n_imported} labels of {summary.n_read} read into SAE {summary.sae_id}{skipped}")


def register(app: typer.Typer) -> None:
    app.command("labels")(labels)
    app.command("export")(export)
    app.command("import")(import_labels)
