"""Writes behind `labeler import`: imported labels become ordinary label rows of existing features.

Imports upsert on the labels' natural key, so importing the same file twice changes nothing twice.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from labeler.errors import NotFoundError
from labeler.store.features import feature_ids
from labeler.store.labels import LABEL_KEY, upsert_labels, upsert_scores
from labeler.store.models import Feature, Label
from labeler.store.queries import LabelRecord
from labeler.store.upsert import ids_by_key, upsert_rows
from labeler.types import LabelCandidate, ScoreResult

# How many missing feature indices an error message lists before "and N more".
MISSING_SHOWN = 10


def existing_feature_ids(session: Session, *, sae_id: int, feature_indices: Iterable[int]) -> dict[int, int]:
    """feature_index -> feature id for every index, or an error naming the missing ones."""
    wanted = sorted({int(i) for i in feature_indices})
    found = feature_ids(session, sae_id=sae_id, feature_indices=wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:MISSING_SHOWN])
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        raise NotFoundError(
            f"{len(missing)} of {len(wanted)} features are not stored for SAE {sae_id}: {shown}{more}. "
            "Labels attach to stored features: run the activation stage for this SAE first, or pass the SAE "
            "these labels belong to with --sae."
        )
    return found


def import_candidates(session: Session, *, sae_id: int, candidates: Sequence[LabelCandidate]) -> list[int]:
    """Imported label candidates of one SAE's features; returns their label ids (status stays as stored)."""
    if not candidates:
        return []
    ids = existing_feature_ids(session, sae_id=sae_id, feature_indices=(c.feature_index for c in candidates))
    return upsert_labels(session, feature_ids=ids, candidates=candidates)


def import_label_records(session: Session, *, sae_id: int, records: Sequence[LabelRecord]) -> list[int]:
    """Labels exported by sae-labeler itself: text, status, scores and the current label come back as they were.

    The file wins on conflict: an existing label's status and scores take the file's values.
    """
    if not records:
        return []
    ids = existing_feature_ids(session, sae_id=sae_id, feature_indices=(r.feature_index for r in records))
    rows = [
        {
            "feature_id": ids[r.feature_index],
            "text": r.text,
            "source": r.source,
            "method": r.method,
            "model": r.model,
            "status": r.status,
            "prompt_hash": r.prompt_hash,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "cost_usd": r.cost_usd,
        }
        for r in records
    ]
    upsert_rows(session, Label.__table__, rows, keys=LABEL_KEY)
    keys = [tuple(row[k] for k in LABEL_KEY) for row in rows]
    found = ids_by_key(session, Label.__table__, LABEL_KEY, keys)
    label_ids = [found[k] for k in keys]
    upsert_scores(
        session,
        results=[
            (label_id, ScoreResult(s.method, s.scorer_model, s.value, s.n_examples, s.details or {}))
            for label_id, r in zip(label_ids, records)
            for s in r.scores
        ],
    )
    for label_id, r in zip(label_ids, records):
        if r.is_current:
            session.execute(
                update(Feature).where(Feature.id == ids[r.feature_index]).values(current_label_id=label_id)
            )
    return label_ids
