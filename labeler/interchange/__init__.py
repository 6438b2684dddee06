"""Labels in and out of sae-labeler: `labeler export` and `labeler import`.

    export   jsonl         one label per line with every score; reads back with `import --format jsonl`
             csv           one row per label, best score per method in columns
             neuronpedia   Neuronpedia's export layout (features, explanations, activations batches)
    import   jsonl         our own export: text, status, scores and current label come back
             neuronpedia   Neuronpedia explanations -> candidates (source "import", method "neuronpedia")
             delphi        delphi explanation files  -> candidates (source "import", method "delphi")

Each format lives in its own module (tabular, neuronpedia, delphi); EXPORTERS and IMPORTERS below name
every format once. Imports attach to features already stored for the target SAE, upsert on the labels'
natural key (importing twice changes nothing), and imported candidates are scored like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session

from labeler.errors import ConfigError
from labeler.interchange import delphi, neuronpedia, tabular
from labeler.store.features import load_feature_examples
from labeler.store.interchange import import_candidates, import_label_records
from labeler.store.queries import (
    feature_indices_of,
    iter_label_records,
    sae_ids_with_features,
    sae_info,
)


@dataclass(frozen=True)
class ExportSummary:
    format: str
    paths: tuple[Path, ...]
    n_labels: int
    n_features: int = 0
    n_examples: int = 0


@dataclass(frozen=True)
class ImportSummary:
    format: str
    sae_id: int
    n_read: int
    n_imported: int
    n_skipped: int  # empty explanations and failure placeholders


def _label_file(out: Path, suffix: str) -> Path:
    path = out / f"labels.{suffix}" if out.is_dir() else out
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def export_jsonl(session: Session, *, out: Path, sae_id: int | None = None) -> ExportSummary:
    path = _label_file(out, "jsonl")
    with open(path, "w", encoding="utf-8") as f:
        n = tabular.write_jsonl(iter_label_records(session, sae_id=sae_id), f)
    return ExportSummary("jsonl", (path,), n)


def export_csv(session: Session, *, out: Path, sae_id: int | None = None) -> ExportSummary:
    path = _label_file(out, "csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        n = tabular.write_csv(iter_label_records(session, sae_id=sae_id), f)
    return ExportSummary("csv", (path,), n)


def export_neuronpedia(
    session: Session,
    *,
    out: Path,
    sae_id: int | None = None,
    model_id: str | None = None,
    source_id: str | None = None,
) -> ExportSummary:
    """One `<modelId>/<sourceId>` folder per SAE under `out`; ids default to Neuronpedia-style slugs."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; the neuronpedia format writes a folder tree, pass a folder")
    sae_ids = [sae_id] if sae_id is not None else sae_ids_with_features(session)
    if source_id is not None and len(sae_ids) > 1:
        raise ConfigError(f"--source-id names one SAE but {len(sae_ids)} would be exported; add --sae")
    paths: list[Path] = []
    n_labels = n_features = n_examples = 0
    for one_sae in sae_ids:
        info = sae_info(session, sae_id=one_sae)
        default_model, default_source = neuronpedia.default_ids(info)
        ids = neuronpedia.NeuronpediaIds(model_id or default_model, source_id or default_source)
        root = out / ids.model_id / ids.source_id
        indices = feature_indices_of(session, sae_id=one_sae)
        for batch_no, start in enumerate(range(0, len(indices), neuronpedia.BATCH_FEATURES)):
            batch = indices[start : start + neuronpedia.BATCH_FEATURES]
            features = load_feature_examples(session, sae_id=one_sae, feature_indices=batch, tokenizer=info.tokenizer)
            records = [
                r for r in iter_label_records(session, sae_id=one_sae, feature_indices=batch)
                if r.status in neuronpedia.EXPORTED_STATUSES
            ]
            name = f"batch-{batch_no}.jsonl.gz"
            n_features += neuronpedia.write_batch(
                root / "features" / name, (neuronpedia.feature_row(ids, info, fx) for fx in features)
            )
            n_labels += neuronpedia.write_batch(
                root / "explanations" / name, (neuronpedia.explanation_row(ids, r) for r in records)
            )
            n_examples += neuronpedia.write_batch(
                root / "activations" / name, (row for fx in features for row in neuronpedia.activation_rows(ids, fx))
            )
        paths.append(root)
    return ExportSummary("neuronpedia", tuple(paths), n_labels, n_features, n_examples)


def import_jsonl(session: Session, *, path: Path, sae_id: int, source: str | None = None, model: str = "") -> ImportSummary:
    """`source` picks one SAE (by name) when the file holds several."""
    records = list(tabular.read_jsonl(path))
    saes = sorted({r.sae for r in records})
    if source is not None:
        records = [r for r in records if r.sae == source]
        if not records:
            raise ConfigError(f"no labels of SAE {source!r} in {path}; it has: {', '.join(saes)}")
    elif len(saes) > 1:
        raise ConfigError(f"{path} holds labels of {len(saes)} SAEs ({', '.join(saes)}); pick one with --source")
    label_ids = import_label_records(session, sae_id=sae_id, records=records)
    return ImportSummary("jsonl", sae_id, len(records), len(set(label_ids)), 0)


def import_neuronpedia(
    session: Session, *, path: Path, sae_id: int, source: str | None = None, model: str = ""
) -> ImportSummary:
    """`source` picks one Neuronpedia source id (`layer`); `model` is used where a row names no model."""
    explanations = neuronpedia.read_explanations(path)
    candidates, skipped = neuronpedia.to_candidates(explanations, source=source)
    if model:
        candidates = [c if c.model else replace(c, model=model) for c in candidates]
    label_ids = import_candidates(session, sae_id=sae_id, candidates=candidates)
    return ImportSummary("neuronpedia", sae_id, len(candidates) + skipped, len(set(label_ids)), skipped)


def import_delphi(session: Session, *, path: Path, sae_id: int, source: str | None = None, model: str = "") -> ImportSummary:
    """`source` picks one module when the folder holds several; `model` records delphi's explainer model."""
    explanations = delphi.read_explanations(path)
    candidates, skipped = delphi.to_candidates(explanations, source=source, model=model)
    label_ids = import_candidates(session, sae_id=sae_id, candidates=candidates)
    return ImportSummary("delphi", sae_id, len(candidates) + skipped, len(set(label_ids)), skipped)


EXPORTERS: dict[str, Callable[..., ExportSummary]] = {
    "jsonl": export_jsonl,
    "csv": export_csv,
    "neuronpedia": export_neuronpedia,
}
IMPORTERS: dict[str, Callable[..., ImportSummary]] = {
    "jsonl": import_jsonl,
    "neuronpedia": import_neuronpedia,
    "delphi": import_delphi,
}


def export_labels(session: Session, *, fmt: str, out: Path, sae_id: int | None = None, **options) -> ExportSummary:
    if fmt not in EXPORTERS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORTERS)}")
    return EXPORTERS[fmt](session, out=out, sae_id=sae_id, **options)


def import_labels(session: Session, *, fmt: str, path: Path, sae_id: int, **options) -> ImportSummary:
    if fmt not in IMPORTERS:
        raise ConfigError(f"unknown import format {fmt!r}; choose one of {', '.join(IMPORTERS)}")
    return IMPORTERS[fmt](session, path=path, sae_id=sae_id, **options)
