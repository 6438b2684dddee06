"""Rows for label candidates and their scores."""

from __future__ import annotations

import math

from typing import Mapping, Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from labeler.store.models import Feature, Label, Score
from labeler.store.upsert import ids_by_key, upsert_rows
from labeler.types import LabelCandidate, ScoreResult

LABEL_KEY = ("feature_id", "source", "method", "model", "text")


def upsert_labels(
    session: Session, *, feature_ids: dict[int, int], candidates: Sequence[LabelCandidate], job_id: int | None = None
) -> list[int]:
    """Write candidates (feature_index -> feature id given); returns label ids in the candidates' order.

    A candidate that already exists keeps its status (a reviewer's accept survives a redelivered task).
    """
    rows = [
        {
            "feature_id": feature_ids[c.feature_index],
            "text": c.text,
            "source": c.source,
            "method": c.method,
            "model": c.model,
            "prompt_hash": c.prompt_hash,
            "job_id": job_id,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "cost_usd": c.cost_usd,
        }
        for c in candidates
    ]
    upsert_rows(session, Label.__table__, rows, keys=LABEL_KEY, update=("prompt_hash",))
    keys = [tuple(r[k] for k in LABEL_KEY) for r in rows]
    found = ids_by_key(session, Label.__table__, LABEL_KEY, keys)
    return [found[k] for k in keys]


def upsert_scores(session: Session, *, results: Sequence[tuple[int, ScoreResult]]) -> None:
    """Write (label id, result) pairs keyed by (label, method, scorer model)."""
    rows = [
        {
            "label_id": label_id,
            "method": r.method,
            "scorer_model": r.scorer_model,
            "value": _finite_or_none(r.value),
            "n_examples": r.n_examples,
            "details": r.details,  # NaN inside becomes null in store.db.json_dumps
        }
        for label_id, r in results
    ]
    upsert_rows(session, Score.__table__, rows, keys=("label_id", "method", "scorer_model"))


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def set_label_states(session: Session, *, states: Mapping[int, tuple[str, str | None]]) -> None:
    """Set features.label_state and label_error (feature id -> (state, error)) in one executemany."""
    if states:
        session.execute(
            update(Feature),
            [{"id": fid, "label_state": state, "label_error": error} for fid, (state, error) in states.items()],
        )
