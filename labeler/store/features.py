"""Rows for features (statistics) and their examples (quantized windows)."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from labeler.store.models import Example, Feature
from labeler.store.upsert import ids_by_key, upsert_rows
from labeler.types import FeatureExamples, FeatureStats, Window


def upsert_features(
    session: Session,
    *,
    sae_id: int,
    stats: Sequence[FeatureStats],
    dataset_id: int | None = None,
    job_id: int | None = None,
) -> dict[int, int]:
    """Write feature statistics keyed by (sae, index); returns feature_index -> feature id."""
    rows = [
        {
            "sae_id": sae_id,
            "feature_index": s.feature_index,
            "dataset_id": dataset_id,
            "job_id": job_id,
            "n_tokens": s.n_tokens,
            "n_firing": s.n_firing,
            "density": s.density,
            "max_activation": s.max_activation,
            "mean_activation": s.mean_activation,
            "histogram": {"edges": list(s.histogram_edges), "counts": list(s.histogram_counts)},
            "is_dead": s.is_dead,
            "is_rare": s.is_rare,
        }
        for s in stats
    ]
    upsert_rows(session, Feature.__table__, rows, keys=("sae_id", "feature_index"))
    return feature_ids(session, sae_id=sae_id, feature_indices=[s.feature_index for s in stats])


def feature_ids(session: Session, *, sae_id: int, feature_indices: Iterable[int]) -> dict[int, int]:
    found = ids_by_key(
        session, Feature.__table__, ("sae_id", "feature_index"), [(sae_id, int(i)) for i in feature_indices]
    )
    return {index: fid for (_, index), fid in found.items()}


def example_row(feature_id: int, dataset_id: int, window: Window) -> dict:
    return {
        "feature_id": feature_id,
        "kind": window.kind,
        "quantile": window.quantile,
        "rank": window.rank,
        "dataset_id": dataset_id,
        "seq_index": window.seq_index,
        "window_start": window.window_start,
        "token_ids": np.asarray(window.token_ids, dtype="<i4").tobytes(),
        "activations": np.asarray(window.activations_q, dtype=np.uint8).tobytes(),
        "scale": float(window.scale),
        "max_position": window.max_position,
        "max_activation": float(window.max_activation),
    }


def replace_examples(
    session: Session, *, dataset_id: int, examples_by_feature: dict[int, Sequence[Window]]
) -> None:
    """Set each feature's examples to exactly these (feature id -> windows).

    A re-run on another dataset can select fewer windows than before; deleting first keeps no stale rank.
    Deleting and inserting inside the caller's transaction keeps it all-or-nothing and idempotent.
    """
    ids = list(examples_by_feature)
    for start in range(0, len(ids), 5000):
        session.execute(delete(Example).where(Example.feature_id.in_(ids[start : start + 5000])))
    rows = [example_row(fid, dataset_id, w) for fid, windows in examples_by_feature.items() for w in windows]
    upsert_rows(session, Example.__table__, rows, keys=("feature_id", "kind", "quantile", "rank"))


def window_from_row(row: Example, vocab: dict[int, str] | None = None) -> Window:
    token_ids = np.frombuffer(row.token_ids, dtype="<i4").copy()
    return Window(
        kind=row.kind,
        quantile=row.quantile,
        rank=row.rank,
        seq_index=row.seq_index,
        window_start=row.window_start,
        token_ids=token_ids,
        activations_q=np.frombuffer(row.activations, dtype=np.uint8).copy(),
        scale=row.scale,
        max_position=row.max_position,
        max_activation=row.max_activation,
        token_strs=None if vocab is None else tuple(vocab.get(int(t), f"<{int(t)}>") for t in token_ids),
    )


def stats_from_row(row: Feature) -> FeatureStats:
    hist = row.histogram or {"edges": [], "counts": []}
    return FeatureStats(
        feature_index=row.feature_index,
        n_tokens=row.n_tokens,
        n_firing=row.n_firing,
        max_activation=row.max_activation,
        sum_activation=row.mean_activation * row.n_firing,
        histogram_edges=tuple(hist["edges"]),
        histogram_counts=tuple(hist["counts"]),
        is_rare=row.is_rare,
    )


def load_feature_examples(
    session: Session, *, sae_id: int, feature_indices: Iterable[int], tokenizer: str | None = None
) -> list[FeatureExamples]:
    """Features with their windows, token strings decoded through the vocab table when `tokenizer` is given."""
    from labeler.store.sources import load_vocab

    features = session.scalars(
        select(Feature)
        .where(Feature.sae_id == sae_id, Feature.feature_index.in_(list(feature_indices)))
        .order_by(Feature.feature_index)
    ).all()
    by_id = {f.id: f for f in features}
    rows = session.scalars(
        select(Example)
        .where(Example.feature_id.in_(list(by_id)))
        .order_by(Example.feature_id, Example.kind, Example.quantile, Example.rank)
    ).all()
    vocab = None
    if tokenizer is not None:
        token_ids = {int(t) for r in rows for t in np.frombuffer(r.token_ids, dtype="<i4")}
        vocab = load_vocab(session, tokenizer=tokenizer, token_ids=token_ids)
    windows: dict[int, list[Window]] = {fid: [] for fid in by_id}
    for r in rows:
        windows[r.feature_id].append(window_from_row(r, vocab))
    return [
        FeatureExamples(sae_id=sae_id, feature_index=f.feature_index, stats=stats_from_row(f), examples=tuple(windows[f.id]))
        for f in features
    ]
