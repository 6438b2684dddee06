"""Neuronpedia's export layout, out and in.

Followed: Neuronpedia's `utils/neuronpedia-utils/neuronpedia_utils/export-data.py` (github.com/hijohnnylin/
neuronpedia) and https://docs.neuronpedia.org/api-and-data/exports. An export is

    DIR/<modelId>/<sourceId>/features/batch-N.jsonl.gz       one Neuron row per feature
    DIR/<modelId>/<sourceId>/explanations/batch-N.jsonl.gz   one Explanation row per label
    DIR/<modelId>/<sourceId>/activations/batch-N.jsonl.gz    one Activation row per example window

with batches of 1024 features, JSON objects one per line, gzipped. Field names are theirs; `layer` is
Neuronpedia's source id and `index` is a string, as in their exports. We write the fields we can fill
honestly: no logit or correlation fields, no quantile bins (we do not keep bin edges), no negative windows.

Import reads Explanation rows (`index`, `description`, `explanationModelName`, `modelId`, `layer`) from a
`.jsonl`, `.jsonl.gz` or `.json` (a list, as the API's explanation export returns) file, or from every
such file under a directory, and makes label candidates: source "import", method "neuronpedia".
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from labeler.errors import ConfigError
from labeler.store.queries import LabelRecord, SAEInfo
from labeler.types import FeatureExamples, LabelCandidate

BATCH_FEATURES = 1024  # Neuronpedia's FEATURES_EXPLANATIONS_BATCH_SIZE / ACTIVATIONS_BATCH_SIZE
EXPORTED_STATUSES = ("candidate", "accepted")
EXPORTED_EXAMPLE_KINDS = ("top", "quantile")  # in this order: top windows first, as Neuronpedia lists them
METHOD = "neuronpedia"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "sae"


def default_ids(sae: SAEInfo) -> tuple[str, str]:
    """(modelId, sourceId) in Neuronpedia's style: `gpt2-small`, `8-res-jb` (layer first, then the set)."""
    model_id = slug(sae.model_name.rsplit("/", 1)[-1])
    layer = re.search(r"(?:blocks|layers?)\.(\d+)", sae.hook_name)
    release = slug(sae.release.removeprefix(sae.model_name)) if sae.release else slug(sae.name)
    source_id = f"{layer.group(1)}-{release}" if layer else release
    return model_id, source_id


@dataclass(frozen=True)
class NeuronpediaIds:
    model_id: str
    source_id: str


def feature_row(ids: NeuronpediaIds, sae: SAEInfo, fx: FeatureExamples) -> dict[str, Any]:
    stats = fx.stats
    edges = stats.histogram_edges
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    return {
        "modelId": ids.model_id,
        "layer": ids.source_id,
        "index": str(fx.feature_index),
        "maxActApprox": stats.max_activation,
        "frac_nonzero": stats.density,
        "freq_hist_data_bar_heights": list(stats.histogram_counts),
        "freq_hist_data_bar_values": centers,
        "hookName": sae.hook_name,
    }


def explanation_row(ids: NeuronpediaIds, record: LabelRecord) -> dict[str, Any]:
    return {
        "id": f"sae-labeler-{record.label_id}",
        "modelId": ids.model_id,
        "layer": ids.source_id,
        "index": str(record.feature_index),
        "description": record.text,
        "typeName": record.method,
        "explanationModelName": record.model,
    }


def activation_rows(ids: NeuronpediaIds, fx: FeatureExamples) -> Iterator[dict[str, Any]]:
    exported = [w for w in fx.examples if w.kind in EXPORTED_EXAMPLE_KINDS]
    for w in sorted(exported, key=lambda w: (EXPORTED_EXAMPLE_KINDS.index(w.kind), w.quantile, w.rank)):
        values = w.activations().astype(float)
        tokens = list(w.token_strs) if w.token_strs is not None else [f"<{int(t)}>" for t in w.token_ids]
        yield {
            "id": f"sae-labeler-{fx.sae_id}-{fx.feature_index}-{w.kind}-{w.quantile}-{w.rank}",
            "modelId": ids.model_id,
            "layer": ids.source_id,
            "index": str(fx.feature_index),
            "tokens": tokens,
            "values": [round(v, 6) for v in values.tolist()],
            "maxValue": float(values.max()) if len(values) else 0.0,
            "minValue": float(values.min()) if len(values) else 0.0,
            "maxValueTokenIndex": int(np.argmax(values)) if len(values) else 0,
        }


def write_batch(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=5) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------- import


def _explanation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"{path} does not exist; pass a Neuronpedia explanations .jsonl(.gz) file or a folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz", ".json")))
    under_explanations = [p for p in files if any(part.startswith("explanations") for part in p.relative_to(path).parts[:-1])]
    chosen = under_explanations or files
    if not chosen:
        raise ConfigError(f"no .jsonl, .jsonl.gz or .json files under {path}")
    return chosen


def _objects(path: Path) -> Iterator[tuple[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        if path.name.endswith(".json"):
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not JSON ({exc.msg})") from exc
            items = data if isinstance(data, list) else data.get("explanations", [data])
            for i, obj in enumerate(items):
                yield f"{path}[{i}]", obj
            return
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield f"{path}:{line_no}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{line_no}: not JSON ({exc.msg})") from exc


@dataclass(frozen=True)
class Explanation:
    model_id: str
    source_id: str
    feature_index: int
    description: str
    explanation_model: str


def read_explanations(path: Path) -> list[Explanation]:
    """Every Explanation row under `path` (a file or a folder of batches)."""
    out = []
    for file in _explanation_files(path):
        for where, obj in _objects(file):
            if not isinstance(obj, dict) or "description" not in obj or "index" not in obj:
                raise ConfigError(
                    f"{where}: not a Neuronpedia explanation (needs index and description); "
                    "import the explanations/ folder of an export, not features/ or activations/"
                )
            try:
                index = int(obj["index"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: index {obj['index']!r} is not a feature index") from exc
            out.append(Explanation(str(obj.get("modelId", "")), str(obj.get("layer", "")), index,
                                   str(obj["description"]), str(obj.get("explanationModelName") or "")))
    return out


def to_candidates(explanations: list[Explanation], *, source: str | None = None) -> tuple[list[LabelCandidate], int]:
    """Candidates from one Neuronpedia source (`layer`); returns (candidates, n skipped as empty).

    Several sources in one import need `source` to pick one: feature indices mean nothing across SAEs.
    """
    sources = sorted({e.source_id for e in explanations})
    if source is not None:
        explanations = [e for e in explanations if e.source_id == source]
        if not explanations:
            raise ConfigError(f"no explanations of source {source!r}; the file has: {', '.join(sources)}")
    elif len(sources) > 1:
        raise ConfigError(f"explanations of {len(sources)} sources ({', '.join(sources)}); pick one with --source")
    candidates = [
        LabelCandidate(feature_index=e.feature_index, text=" ".join(e.description.split()), source="import",
                       method=METHOD, model=e.explanation_model)
        for e in explanations
        if e.description.strip()
    ]
    return candidates, len(explanations) - len(candidates)
