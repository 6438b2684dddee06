"""`labeler labels | export | import` as a user runs them (SQLite through the settings URL)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from interchange_seed import SAE_NAME, create_sae, seed_labels
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from labeler.cli import app
from labeler.cli import labels as labels_cli
from labeler.settings import reset_settings
from labeler.store.db import make_engine, upgrade


@pytest.fixture
def seeded_url(sqlite_url, monkeypatch) -> str:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with sessionmaker(bind=engine)() as session:
        seed_labels(session, create_sae(session))
    engine.dispose()
    monkeypatch.setenv("LABELER_DATABASE_URL", sqlite_url)
    reset_settings()
    return sqlite_url


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_labels_json_csv_and_table(seeded_url, monkeypatch):
    monkeypatch.setattr(labels_cli.console, "width", 160)
    rows = json.loads(invoke("labels", "--query", "CRITIC", "--format", "json"))
    assert [(r["sae"], r["feature_index"], r["label"], r["status"], r["is_current"], r["detection"]) for r in rows] == [
        (SAE_NAME, 0, "Criticism and critics, quoted", "accepted", True, 0.91)]

    table = list(csv.DictReader(io.StringIO(invoke("labels", "--sae", SAE_NAME, "--format", "csv", "--limit", "10"))))
    assert [r["feature_index"] for r in table] == ["0", "1", "3"]  # detection first, then unscored by index
    assert table[0]["embedding"] == "0.66" and table[1]["detection"] == ""

    out = invoke("labels", "-q", "python")
    assert "Python function calls" in out and "accepted (current)" in out
    assert "no labels match 'zebra'" in invoke("labels", "-q", "zebra")


def test_labels_reports_bad_input_without_a_traceback(seeded_url):
    result = CliRunner().invoke(app, ["labels", "--sae", "no-such-sae"])
    assert result.exit_code == 1 and "known SAEs: 1 (gpt2-small-res-jb" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["labels", "--format", "xml"])
    assert result.exit_code == 1 and "--format must be one of table, csv, json" in result.output


def test_export_and_import_commands(seeded_url, tmp_path):
    out = invoke("export", "--format", "jsonl", "--out", str(tmp_path / "labels.jsonl"), "--sae", "1")
    assert "exported 6 labels" in out
    out = invoke("export", "--format", "neuronpedia", "--out", str(tmp_path / "np"), "--source-id", "8-mine")
    assert "exported 4 labels, 6 features, 3 examples" in out
    assert (tmp_path / "np" / "gpt2-small" / "8-mine" / "explanations" / "batch-0.jsonl.gz").exists()

    delphi_dir = tmp_path / "delphi"
    delphi_dir.mkdir()
    (delphi_dir / "blocks.8.hook_resid_pre_latent5.txt").write_text('"a dead feature, says delphi"')
    (delphi_dir / "blocks.8.hook_resid_pre_latent4.txt").write_text('"Explanation could not be parsed."')
    out = invoke("import", str(delphi_dir), "--format", "delphi", "--sae", SAE_NAME, "--model", "llama")
    assert "imported 1 labels of 2 read into SAE 1, skipped 1 empty or failed explanations" in " ".join(out.split())
    rows = json.loads(invoke("labels", "-q", "delphi", "--format", "json"))
    assert [(r["feature_index"], r["source"], r["method"], r["model"]) for r in rows] == [(5, "import", "delphi", "llama")]

    result = CliRunner().invoke(app, ["export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--model-id", "m"])
    assert result.exit_code == 1 and "apply to --format neuronpedia only" in result.output
