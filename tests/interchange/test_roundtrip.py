"""Export JSONL from a seeded database, import it into an empty one with the same SAE and features: same
labels, statuses, current labels and scores. Runs SQLite -> PostgreSQL and PostgreSQL -> SQLite."""

from __future__ import annotations

import csv
import json

import pytest
from interchange_seed import SAE_NAME, create_sae, seed_labels
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from labeler.errors import ConfigError, NotFoundError
from labeler.interchange import export_labels, import_labels
from labeler.store.db import make_engine, upgrade
from labeler.store.models import Feature, Label, Score
from labeler.store.sources import upsert_sae


def label_snapshot(session: Session) -> list[tuple]:
    """Every label with its scores and whether it is current, without database ids."""
    labels = session.execute(
        select(Feature.feature_index, Label.id, Label.text, Label.source, Label.method, Label.model, Label.status,
               Label.prompt_hash, Label.prompt_tokens, Label.completion_tokens, Label.cost_usd,
               Feature.current_label_id == Label.id)
        .join(Feature, Feature.id == Label.feature_id)
        .order_by(Feature.feature_index, Label.text)
    ).all()
    scores: dict[int, list[tuple]] = {}
    for s in session.scalars(select(Score).order_by(Score.method, Score.scorer_model)):
        scores.setdefault(s.label_id, []).append((s.method, s.scorer_model, s.value, s.n_examples, s.details or {}))
    return [(*row[:1], *row[2:11], bool(row[11]), tuple(scores.get(row[1], []))) for row in labels]


@pytest.fixture(params=[("sqlite", "postgresql"), ("postgresql", "sqlite")], ids=["sqlite-to-pg", "pg-to-sqlite"])
def two_databases(request, sqlite_url, pg_database):
    urls = {"sqlite": sqlite_url, "postgresql": pg_database}
    engines = []
    sessions = []
    for dialect in request.param:
        upgrade(urls[dialect])
        engine = make_engine(urls[dialect])
        engines.append(engine)
        sessions.append(sessionmaker(bind=engine, expire_on_commit=False)())
    yield sessions
    for s in sessions:
        s.close()
    for e in engines:
        e.dispose()


def test_jsonl_export_then_import_restores_labels_and_scores(two_databases, tmp_path):
    source, target = two_databases
    seed_labels(source, create_sae(source))
    original = label_snapshot(source)
    assert len(original) == 6

    out = tmp_path / "labels.jsonl"
    summary = export_labels(source, fmt="jsonl", out=out, sae_id=None)
    assert summary.n_labels == 6 and summary.paths == (out,)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {line["sae"] for line in lines} == {SAE_NAME}
    assert any(line["text"] == 'Ünïcödé, "quotes" and a\ttab' for line in lines)

    target_sae = create_sae(target, with_examples=False)
    result = import_labels(target, fmt="jsonl", path=out, sae_id=target_sae.sae_id)
    target.commit()
    assert (result.n_read, result.n_imported, result.n_skipped) == (6, 6, 0)
    assert label_snapshot(target) == original

    # importing the same file again changes nothing
    import_labels(target, fmt="jsonl", path=out, sae_id=target_sae.sae_id)
    target.commit()
    assert label_snapshot(target) == original


def test_csv_export_has_one_row_per_label_with_best_scores(two_databases, tmp_path):
    source, _ = two_databases
    seed_labels(source, create_sae(source))
    summary = export_labels(source, fmt="csv", out=tmp_path, sae_id=None)
    (path,) = summary.paths
    assert path == tmp_path / "labels.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert len(rows) == 6
    critics = next(r for r in rows if r["text"] == "Criticism and critics, quoted")
    assert (critics["detection"], critics["fuzzing"], critics["embedding"], critics["simulation"]) == ("0.91", "0.8", "0.66", "")
    assert (critics["status"], critics["is_current"]) == ("accepted", "True")
    assert len(json.loads(critics["scores_json"])) == 4
    tab = next(r for r in rows if r["text"].startswith("Ünïcödé"))
    assert tab["text"] == 'Ünïcödé, "quotes" and a\ttab'


def test_import_refuses_features_that_are_not_stored(two_databases, tmp_path):
    source, target = two_databases
    seed_labels(source, create_sae(source))
    out = tmp_path / "labels.jsonl"
    export_labels(source, fmt="jsonl", out=out)
    empty_sae = target_sae_without_features(target)
    with pytest.raises(NotFoundError, match=rf"4 of 4 features are not stored for SAE {empty_sae}: 0, 1, 2, 3"):
        import_labels(target, fmt="jsonl", path=out, sae_id=empty_sae)
    target.rollback()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"feature_index": 1, "text": "x", "source": "llm", "method": "m"}\n{"text": "no index"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: missing feature_index, source, method"):
        import_labels(target, fmt="jsonl", path=bad, sae_id=empty_sae)


def target_sae_without_features(session: Session) -> int:
    sae_id = upsert_sae(session, name="empty", source="local", model_name="m", hook_name="h", d_in=1, d_sae=1,
                        architecture="standard", checksum="1" * 64)
    session.commit()
    return sae_id
