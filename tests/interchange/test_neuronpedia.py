"""Neuronpedia's export layout out of a seeded database, and Neuronpedia explanations in, on both dialects."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from interchange_seed import create_sae, seed_labels
from sqlalchemy import select

from labeler.errors import ConfigError
from labeler.interchange import export_labels, import_labels, neuronpedia
from labeler.store.features import upsert_features
from labeler.store.labels import upsert_scores
from labeler.store.models import Feature, Label
from labeler.store.queries import find_feature_labels
from labeler.store.sources import upsert_sae
from labeler.types import FeatureStats, ScoreResult


def read_batch(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_batch(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_export_writes_neuronpedia_batches_with_their_field_names(session, tmp_path, monkeypatch):
    seeded = create_sae(session)
    seed_labels(session, seeded)
    monkeypatch.setattr(neuronpedia, "BATCH_FEATURES", 4)
    summary = export_labels(session, fmt="neuronpedia", out=tmp_path / "np", sae_id=seeded.sae_id)
    root = tmp_path / "np" / "gpt2-small" / "8-res-jb"
    assert summary.paths == (root,)
    assert (summary.n_features, summary.n_labels, summary.n_examples) == (6, 4, 3)
    for folder in ("features", "explanations", "activations"):
        assert sorted(p.name for p in (root / folder).iterdir()) == ["batch-0.jsonl.gz", "batch-1.jsonl.gz"]

    features = read_batch(root / "features" / "batch-0.jsonl.gz") + read_batch(root / "features" / "batch-1.jsonl.gz")
    assert [f["index"] for f in features] == ["0", "1", "2", "3", "4", "5"]
    f0 = features[0]
    assert (f0["modelId"], f0["layer"], f0["hookName"]) == ("gpt2-small", "8-res-jb", "blocks.8.hook_resid_pre")
    assert (f0["maxActApprox"], f0["frac_nonzero"]) == (2.0, 0.01)
    assert (f0["freq_hist_data_bar_heights"], f0["freq_hist_data_bar_values"]) == ([5, 3, 2], [0.5, 1.5, 2.5])

    explanations = read_batch(root / "explanations" / "batch-0.jsonl.gz")
    assert read_batch(root / "explanations" / "batch-1.jsonl.gz") == []
    by_text = {e["description"]: e for e in explanations}
    assert set(by_text) == {"Criticism and critics, quoted", "Python function calls `main()`", "tokens: def, main",
                            'Ünïcödé, "quotes" and a\ttab'}  # superseded and rejected labels stay home
    critics = by_text["Criticism and critics, quoted"]
    assert {k: critics[k] for k in ("modelId", "layer", "index", "typeName", "explanationModelName")} == {
        "modelId": "gpt2-small", "layer": "8-res-jb", "index": "0", "typeName": "default",
        "explanationModelName": "gpt-4o-mini"}
    assert critics["id"].startswith("sae-labeler-")

    activations = read_batch(root / "activations" / "batch-0.jsonl.gz")
    assert [(a["index"], a["tokens"]) for a in activations] == [
        ("0", [" The", " critics", " said"]), ("0", [" critics", " said"]), ("1", [" def", " main", "(", ")"])]
    top = activations[0]
    assert top["values"] == pytest.approx([0.0, 5.0, 0.2])
    assert (top["maxValue"], top["minValue"], top["maxValueTokenIndex"]) == (pytest.approx(5.0), 0.0, 1)


def test_exported_explanations_import_back_as_candidates_of_another_sae(session, tmp_path):
    seed_labels(session, create_sae(session))
    export_labels(session, fmt="neuronpedia", out=tmp_path / "np")
    other = upsert_sae(session, name="copy", source="local", model_name="gpt2-small", hook_name="blocks.8.x",
                       d_in=768, d_sae=8, architecture="standard", checksum="2" * 64)
    upsert_features(session, sae_id=other, stats=[FeatureStats(i, 10, 1, 1.0, 1.0, (), ()) for i in range(6)])
    summary = import_labels(session, fmt="neuronpedia", path=tmp_path / "np", sae_id=other)
    session.commit()
    assert (summary.n_read, summary.n_imported, summary.n_skipped) == (4, 4, 0)
    rows = session.execute(select(Feature.feature_index, Label.text, Label.source, Label.method, Label.model,
                                  Label.status).join(Feature, Feature.id == Label.feature_id)
                           .where(Feature.sae_id == other).order_by(Feature.feature_index, Label.text)).all()
    assert [tuple(r) for r in rows] == [
        (0, "Criticism and critics, quoted", "import", "neuronpedia", "gpt-4o-mini", "candidate"),
        (1, "Python function calls `main()`", "import", "neuronpedia", "gpt-4o-mini", "candidate"),
        (1, "tokens: def, main", "import", "neuronpedia", "", "candidate"),
        (3, 'Ünïcödé, "quotes" and a tab', "import", "neuronpedia", "gpt-4o-mini", "candidate"),
    ]


def test_import_neuronpedia_explanations_files_and_folders(session, tmp_path):
    seeded = create_sae(session, with_examples=False)
    export = tmp_path / "gemma-2-2b" / "20-gemmascope-res-16k"
    write_batch(export / "explanations" / "batch-0.jsonl.gz", [
        {"id": "c1", "modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "2",
         "description": " the word  'criticism' ", "typeName": "oai_token-act-pair", "explanationModelName": "gpt-4o-mini"},
        {"id": "c2", "modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "4",
         "description": "legal documents", "typeName": "np_max-act-logits", "explanationModelName": "claude-3-5-haiku"},
        {"id": "c3", "modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "3", "description": ""},
    ])
    write_batch(export / "features" / "batch-0.jsonl.gz", [{"modelId": "gemma-2-2b", "index": "2"}])  # ignored
    summary = import_labels(session, fmt="neuronpedia", path=tmp_path, sae_id=seeded.sae_id)
    again = import_labels(session, fmt="neuronpedia", path=tmp_path, sae_id=seeded.sae_id)
    session.commit()
    assert (summary.n_read, summary.n_imported, summary.n_skipped) == (3, 2, 1)
    assert again.n_imported == 2
    labels = session.execute(select(Label.text, Label.model).order_by(Label.text)).all()
    assert [tuple(r) for r in labels] == [("legal documents", "claude-3-5-haiku"), ("the word 'criticism'", "gpt-4o-mini")]

    # imported candidates are scored like any other and become the feature's label through the views
    (label_id,) = session.scalars(select(Label.id).where(Label.text == "legal documents"))
    upsert_scores(session, results=[(label_id, ScoreResult("detection", "judge", 0.77, 20))])
    session.commit()
    (hit,) = find_feature_labels(session, query="legal", sae_id=seeded.sae_id)
    assert (hit.feature_index, hit.source, hit.method, hit.scores["detection"]) == (4, "import", "neuronpedia", 0.77)

    # the API's explanation export: one JSON list; several sources need --source
    api = tmp_path / "api.json"
    api.write_text(json.dumps([
        {"modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": 1, "description": "dates",
         "explanationModelName": None},
        {"modelId": "gemma-2-2b", "layer": "19-gemmascope-res-16k", "index": 1, "description": "years"},
    ]))
    with pytest.raises(ConfigError, match="2 sources .*pick one with --source"):
        import_labels(session, fmt="neuronpedia", path=api, sae_id=seeded.sae_id)
    one = import_labels(session, fmt="neuronpedia", path=api, sae_id=seeded.sae_id, source="20-gemmascope-res-16k",
                        model="unknown-explainer")
    session.commit()
    assert one.n_imported == 1
    assert session.scalar(select(Label.model).where(Label.text == "dates")) == "unknown-explainer"


def test_import_neuronpedia_rejects_files_that_are_not_explanations(session, tmp_path):
    seeded = create_sae(session, with_examples=False)
    features = tmp_path / "features.jsonl"
    features.write_text(json.dumps({"modelId": "gpt2-small", "layer": "8-res-jb", "index": "0", "maxActApprox": 1}) + "\n")
    with pytest.raises(ConfigError, match="not a Neuronpedia explanation"):
        import_labels(session, fmt="neuronpedia", path=features, sae_id=seeded.sae_id)
    with pytest.raises(ConfigError, match="does not exist"):
        import_labels(session, fmt="neuronpedia", path=tmp_path / "missing", sae_id=seeded.sae_id)
