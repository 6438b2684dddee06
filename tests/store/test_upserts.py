"""Store writes are idempotent upserts on natural keys, on SQLite and PostgreSQL (`session` fixture).

Running every write twice leaves every row (ids and timestamps included) as after the first run; a
conflicting write changes only the columns that write owns; a failing transaction leaves nothing behind.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labeler.store.db import session_scope
from labeler.store.features import replace_examples, upsert_features
from labeler.store.labels import upsert_labels, upsert_scores
from labeler.store.models import (
    SAE,
    Base,
    Dataset,
    Example,
    Feature,
    Label,
    Score,
    Sequence,
    Vocab,
)
from labeler.store.sources import upsert_dataset, upsert_sae, upsert_sequences, upsert_vocab
from labeler.store.upsert import upsert_rows
from labeler.types import FeatureStats, LabelCandidate, ScoreResult, Window

SAE_FIELDS = dict(name="res-jb/blocks.8", source="pretrained", release="res-jb", sae_id="blocks.8", path=None,
                  model_name="gpt2-small", hook_name="blocks.8.hook_resid_pre", d_in=768, d_sae=24576,
                  architecture="standard", checksum="f" * 64)
DATASET_FIELDS = dict(name="pile-10k", source="hf:pile", tokenizer="gpt2", context_size=128, n_sequences=2,
                      n_tokens=256, content_hash="e" * 64)
WRITTEN_TABLES = ("saes", "datasets", "vocab", "sequences", "features", "examples", "labels", "scores")


def _stats(index: int, n_firing: int) -> FeatureStats:
    return FeatureStats(index, 1000, n_firing, 3.0 if n_firing else 0.0, 1.5 * n_firing, (0.0, 1.5, 3.0),
                        (n_firing // 2, n_firing - n_firing // 2))


def _window(rank: int, first_token: int) -> Window:
    return Window(kind="top", quantile=0, rank=rank, seq_index=rank, window_start=2,
                  token_ids=np.arange(first_token, first_token + 8, dtype=np.int32),
                  activations_q=np.array([0, 3, 255, 9, 0, 0, 1, 2], dtype=np.uint8), scale=0.0117,
                  max_position=4, max_activation=255 * 0.0117)


def write_everything(session: Session) -> dict:
    """One run of every store upsert a job performs, with fixed inputs; returns the ids they report."""
    sae_id = upsert_sae(session, **SAE_FIELDS)
    dataset_id = upsert_dataset(session, **DATASET_FIELDS)
    upsert_vocab(session, tokenizer="gpt2", vocab={i: f"tok{i}" for i in range(50)})
    upsert_sequences(session, dataset_id=dataset_id,
                     sequences={0: np.arange(128, dtype=np.int32), 1: np.arange(128, 256, dtype=np.int32)})
    feature_ids = upsert_features(session, sae_id=sae_id, dataset_id=dataset_id,
                                  stats=[_stats(0, 40), _stats(1, 0), _stats(2, 7)])
    replace_examples(session, dataset_id=dataset_id, examples_by_feature={
        feature_ids[0]: [_window(0, 10), _window(1, 20)], feature_ids[2]: [_window(0, 30)]})
    label_ids = upsert_labels(session, feature_ids=feature_ids, candidates=[
        LabelCandidate(0, "commas in lists", "llm", "default", "gpt-4o-mini", "h1", 900, 12, 0.0002),
        LabelCandidate(0, "punctuation", "llm", "default", "gpt-4o-mini", "h1", 900, 10, 0.0002),
        LabelCandidate(2, "the word 'the'", "offline", "lift"),
    ])
    upsert_scores(session, results=[
        (label_ids[0], ScoreResult("detection", "gpt-4o-mini", 0.81, 40, {"auroc": 0.9})),
        (label_ids[0], ScoreResult("embedding", "", 0.66, 40)),
        (label_ids[2], ScoreResult("embedding", "", None, 0, {"skipped": "no negatives"})),
    ])
    session.commit()
    return {"sae": sae_id, "dataset": dataset_id, "features": feature_ids, "labels": label_ids}


def snapshot(session: Session) -> dict[str, list[tuple]]:
    """Every row of every written table, all columns, ordered by natural key.

    Examples leave out their surrogate id: replace_examples deletes and re-inserts a feature's windows (so
    no stale rank survives a re-run), and nothing references examples.id.
    """
    out = {}
    for name in WRITTEN_TABLES:
        table = Base.metadata.tables[name]
        if name == "examples":
            columns = [c for c in table.columns if c.name != "id"]
            order = [table.c.feature_id, table.c.kind, table.c.quantile, table.c.rank]
        else:
            columns, order = list(table.columns), list(table.primary_key.columns)
        out[name] = [tuple(r) for r in session.execute(select(*columns).order_by(*order)).all()]
    return out


def test_every_upsert_run_twice_leaves_the_same_rows(session):
    first_ids = write_everything(session)
    first = snapshot(session)
    assert {k: len(v) for k, v in first.items()} == {
        "saes": 1, "datasets": 1, "vocab": 50, "sequences": 2, "features": 3, "examples": 3, "labels": 3, "scores": 3,
    }
    second_ids = write_everything(session)
    assert second_ids == first_ids
    assert snapshot(session) == first


def test_a_conflicting_write_changes_only_its_own_columns(session):
    ids = write_everything(session)
    f0 = ids["features"][0]
    label0 = ids["labels"][0]
    # state owned by other stages: a reviewer's accept and the feature's current label
    session.execute(update(Label).where(Label.id == label0).values(status="accepted"))
    session.execute(update(Feature).where(Feature.id == f0).values(current_label_id=label0, label_state="labelled"))
    session.commit()

    assert upsert_sae(session, **{**SAE_FIELDS, "name": "renamed", "path": "/tmp/x"}) == ids["sae"]
    upsert_vocab(session, tokenizer="gpt2", vocab={3: "CHANGED", 99: "tok99"})
    upsert_sequences(session, dataset_id=ids["dataset"], sequences={0: np.zeros(4, dtype=np.int32)})
    assert upsert_features(session, sae_id=ids["sae"], dataset_id=ids["dataset"], stats=[_stats(0, 80)]) == {0: f0}
    replace_examples(session, dataset_id=ids["dataset"], examples_by_feature={f0: [_window(0, 40)]})
    again = upsert_labels(session, feature_ids=ids["features"], candidates=[
        LabelCandidate(0, "commas in lists", "llm", "default", "gpt-4o-mini", "h2", 5, 5, 9.0)])
    upsert_scores(session, results=[(label0, ScoreResult("detection", "gpt-4o-mini", 0.5, 10))])
    session.commit()

    sae = session.get(SAE, ids["sae"])
    assert (sae.name, sae.path, sae.checksum, sae.d_sae) == ("renamed", "/tmp/x", "f" * 64, 24576)
    vocab = dict(session.execute(select(Vocab.token_id, Vocab.text).where(Vocab.tokenizer == "gpt2")).all())
    assert vocab[3] == "tok3" and vocab[99] == "tok99" and len(vocab) == 51  # insert-or-ignore
    kept = session.scalar(select(Sequence.token_ids).where(Sequence.dataset_id == ids["dataset"], Sequence.seq_index == 0))
    assert np.frombuffer(kept, dtype="<i4").tolist() == list(range(128))  # insert-or-ignore

    feature = session.get(Feature, f0)
    session.refresh(feature)
    assert (feature.n_firing, feature.density) == (80, 0.08)
    assert (feature.current_label_id, feature.label_state) == (label0, "labelled")  # not the stats' columns

    examples = session.execute(select(Example.feature_id, Example.rank, Example.token_ids).order_by(Example.id)).all()
    assert [(fid, rank) for fid, rank, _ in examples] == [(ids["features"][2], 0), (f0, 0)]  # stale rank 1 gone
    assert np.frombuffer(examples[1][2], dtype="<i4")[0] == 40

    assert again == [label0]
    label = session.get(Label, label0)
    session.refresh(label)
    assert (label.status, label.prompt_hash, label.prompt_tokens, label.cost_usd) == ("accepted", "h2", 900, 0.0002)
    scores = session.execute(select(Score.method, Score.value, Score.n_examples).where(Score.label_id == label0)
                             .order_by(Score.method)).all()
    assert [tuple(s) for s in scores] == [("detection", 0.5, 10), ("embedding", 0.66, 40)]
    assert session.scalar(select(func.count()).select_from(Label)) == 3

    # one call repeating a key behaves like separate upserts in order (PostgreSQL refuses it in one statement)
    upsert_scores(session, results=[(label0, ScoreResult("fuzzing", "m", 0.1, 1)),
                                    (label0, ScoreResult("fuzzing", "m", 0.2, 2))])
    upsert_rows(session, Vocab.__table__, [{"tokenizer": "x", "token_id": 1, "text": "first"},
                                           {"tokenizer": "x", "token_id": 1, "text": "second"}],
                keys=("tokenizer", "token_id"), update=())
    session.commit()
    assert session.execute(select(Score.value, Score.n_examples).where(Score.label_id == label0, Score.method == "fuzzing")).one() == (0.2, 2)
    assert session.scalar(select(Vocab.text).where(Vocab.tokenizer == "x")) == "first"


def _url(session: Session) -> str:
    return session.get_bind().url.render_as_string(hide_password=False)


def test_a_failing_transaction_leaves_no_half_written_rows(session):
    """Several multi-statement upserts, then a foreign-key violation: session_scope rolls all of it back."""
    url = _url(session)
    with pytest.raises(IntegrityError):
        with session_scope(url) as s:
            sae_id = upsert_sae(s, **SAE_FIELDS)
            upsert_dataset(s, **DATASET_FIELDS)
            upsert_vocab(s, tokenizer="gpt2", vocab={i: f"t{i}" for i in range(12_000)})  # several statements
            feature_ids = upsert_features(s, sae_id=sae_id, stats=[_stats(i, i % 5) for i in range(100)])
            label_ids = upsert_labels(s, feature_ids=feature_ids,
                                      candidates=[LabelCandidate(i, f"label {i}", "llm", "default") for i in range(100)])
            upsert_scores(s, results=[(label_ids[0], ScoreResult("detection", "m", 0.7, 3)),
                                      (max(label_ids) + 1000, ScoreResult("detection", "m", 0.7, 3))])
    counts = {name: session.scalar(select(func.count()).select_from(Base.metadata.tables[name]))
              for name in WRITTEN_TABLES}
    assert counts == dict.fromkeys(WRITTEN_TABLES, 0)
    assert session.scalar(select(func.count()).select_from(Dataset)) == 0


def test_non_finite_scores_are_stored_as_null(session):
    """A Pearson r of a constant prediction is NaN; PostgreSQL's JSON would refuse it, so it becomes null."""
    ids = write_everything(session)
    upsert_scores(session, results=[
        (ids["labels"][1], ScoreResult("simulation", "m", float("nan"), 5, {"r": float("nan"), "per": [1.0, float("inf")]})),
    ])
    session.commit()
    row = session.execute(select(Score.value, Score.details).where(Score.method == "simulation")).one()
    assert row.value is None
    assert row.details == {"r": None, "per": [1.0, None]}
