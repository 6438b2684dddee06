"""Rows for disputes and their reasons, current labels, and the review queue read by the web UI.

The rules themselves are pure (`labeler.disputes`); this module loads their inputs, writes their
decisions and answers the queue's questions. Semantics of the stored state:

- one `disputes` row per feature; `dispute_reasons` holds the rules that fire *now* for an open dispute
  (re-evaluation replaces the set), or the set a reviewer saw when they resolved it;
- status 'open' | 'resolved'; `resolution` says how it closed: 'rules' (no rule fires any more; its
  reasons are removed) or 'reviewer' (a person decided; reasons kept as they were);
- re-evaluation never reopens a reviewer's resolution for reasons the reviewer already saw; a reason
  they did not see (e.g. a new collision) reopens it;
- a `human_flag` reason is only ever removed by a reviewer's resolution, never by the rules.

Reviewer actions (flag, resolve) are written by `labeler.store.review` with the same meaning.

Every write is idempotent: evaluating twice leaves the same rows (timestamps included: unchanged rows
are not touched).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import Select, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from labeler.config import LabelConfig
from labeler.disputes import (
    REASONS,
    CandidateInput,
    DisputeDecision,
    Embedder,
    FeatureDisputeInput,
    LabelRef,
    ScoreValue,
    best_candidate,
    evaluate_disputes,
    find_collisions,
    priority,
)
from labeler.embed import embed_texts
from labeler.errors import NotFoundError
from labeler.store.features import feature_ids
from labeler.store.models import Dispute, DisputeReason, Feature, Label, Score, utcnow
from labeler.store.upsert import ids_by_key, upsert_rows

IDS_PER_QUERY = 5000  # ids in one IN (...) list; far below both dialects' bound-parameter limits


@dataclass(frozen=True)
class OpenDispute:
    """One row of the review queue: a disputed feature, why, and the label it currently shows."""

    dispute_id: int
    feature_id: int
    sae_id: int
    feature_index: int
    priority: float
    density: float
    reasons: tuple[tuple[str, dict[str, Any]], ...]
    current_label_id: int | None
    current_label: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def reason_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.reasons)


@dataclass(frozen=True)
class DisputeWriteSummary:
    """What `upsert_disputes` changed, for logs and progress output."""

    opened: int = 0  # new disputes, and resolved ones reopened
    updated: int = 0  # open disputes whose reasons or priority changed
    resolved: int = 0  # open disputes closed because no rule fires any more
    unchanged: int = 0  # including reviewer resolutions kept as they were


def _chunks(values: Sequence[Any], size: int = IDS_PER_QUERY) -> Iterable[list[Any]]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _plain(details: Any) -> Any:
    """JSON as the database returns it, so stored and new details compare equal."""
    return json.loads(json.dumps(details, sort_keys=True))


def _ordered_reasons(reasons: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    rank = {name: i for i, name in enumerate(REASONS)}
    return tuple(sorted(reasons.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _features_query(sae_id: int, feature_indices: Sequence[int] | None) -> Iterable[Select]:
    """The SAE's features, in IN-list chunks when a subset is asked for."""
    base = select(Feature).where(Feature.sae_id == sae_id)
    if feature_indices is None:
        yield base
        return
    for chunk in _chunks(sorted({int(i) for i in feature_indices})):
        yield base.where(Feature.feature_index.in_(chunk))


def load_dispute_inputs(
    session: Session, *, sae_id: int, feature_indices: Sequence[int] | None = None
) -> list[FeatureDisputeInput]:
    """Each feature's candidates with their scores, label state and any reviewer flag (by feature index).

    `feature_indices=None` loads every feature of the SAE. Dead features come back with no candidates.
    """
    columns = (Feature.id, Feature.feature_index, Feature.density, Feature.label_state, Feature.label_error)
    features = [
        row
        for query in _features_query(sae_id, feature_indices)
        for row in session.execute(query.with_only_columns(*columns))
    ]
    features.sort(key=lambda f: f.feature_index)
    by_id = {f.id: f for f in features}
    labels: dict[int, list[Any]] = {fid: [] for fid in by_id}
    scores: dict[int, list[ScoreValue]] = {}
    flags: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(list(by_id)):
        label_rows = session.execute(
            select(Label.id, Label.feature_id, Label.text, Label.source, Label.status)
            .where(Label.feature_id.in_(chunk))
            .order_by(Label.id)
        )
        for label in label_rows:
            labels[label.feature_id].append(label)
        score_rows = session.execute(
            select(Score.label_id, Score.method, Score.scorer_model, Score.value)
            .join(Label, Label.id == Score.label_id)
            .where(Label.feature_id.in_(chunk))
            .order_by(Score.label_id, Score.method, Score.scorer_model)
        )
        for label_id, method, scorer_model, value in score_rows:
            scores.setdefault(label_id, []).append(ScoreValue(method, scorer_model, value))
        flag_rows = session.execute(
            select(Dispute.feature_id, DisputeReason.details)
            .join(DisputeReason, DisputeReason.dispute_id == Dispute.id)
            .where(Dispute.feature_id.in_(chunk), DisputeReason.reason == "human_flag")
        )
        for feature_id, details in flag_rows:
            flags[feature_id] = details or {}
    return [
        FeatureDisputeInput(
            feature_index=f.feature_index,
            density=f.density,
            candidates=tuple(
                CandidateInput(
                    text=label.text,
                    label_id=label.id,
                    source=label.source,
                    status=label.status,
                    scores=tuple(scores.get(label.id, ())),
                )
                for label in labels[f.id]
            ),
            label_state=f.label_state,
            label_error=f.label_error,
            human_flag=flags.get(f.id),
        )
        for f in features
    ]


def load_current_labels(
    session: Session, *, sae_id: int, exclude_feature_indices: Iterable[int] = ()
) -> list[LabelRef]:
    """Every feature's current label text in the SAE (features without one are left out)."""
    excluded = {int(i) for i in exclude_feature_indices}
    rows = session.execute(
        select(Feature.feature_index, Label.text)
        .join(Label, Label.id == Feature.current_label_id)
        .where(Feature.sae_id == sae_id)
        .order_by(Feature.feature_index)
    )
    return [LabelRef(index, text) for index, text in rows if index not in excluded]


def set_current_labels(session: Session, *, sae_id: int, feature_indices: Sequence[int] | None = None) -> int:
    """Point each feature at its best label (an accepted one wins; else the best mean score).

    Features left with no open candidate get no current label. Returns how many features changed.
    """
    inputs = load_dispute_inputs(session, sae_id=sae_id, feature_indices=feature_indices)
    wanted: dict[int, int | None] = {}
    for feature in inputs:
        best = best_candidate(feature)
        wanted[feature.feature_index] = best.label_id if best is not None else None
    current = {
        index: label_id
        for query in _features_query(sae_id, list(wanted))
        for index, label_id in session.execute(
            query.with_only_columns(Feature.feature_index, Feature.current_label_id)
        )
    }
    changes = [
        {"b_sae": sae_id, "b_index": index, "current_label_id": label_id}
        for index, label_id in wanted.items()
        if current.get(index) != label_id
    ]
    if changes:
        table = Feature.__table__
        session.execute(
            update(table)
            .where(and_(table.c.sae_id == bindparam("b_sae"), table.c.feature_index == bindparam("b_index")))
            .values(current_label_id=bindparam("current_label_id")),
            changes,
        )
    return len(changes)


def upsert_disputes(session: Session, *, sae_id: int, decisions: Sequence[DisputeDecision]) -> DisputeWriteSummary:
    """Write rule decisions: open, update, reopen or resolve each feature's dispute (see module docstring)."""
    if not decisions:
        return DisputeWriteSummary()
    fids = feature_ids(session, sae_id=sae_id, feature_indices=[d.feature_index for d in decisions])
    missing = sorted({d.feature_index for d in decisions} - set(fids))
    if missing:
        raise NotFoundError(f"features {missing[:10]} of SAE {sae_id} are not in the store; write their stats first")
    density = dict(
        row
        for chunk in _chunks(list(fids.values()))
        for row in session.execute(select(Feature.id, Feature.density).where(Feature.id.in_(chunk)))
    )
    existing: dict[int, Any] = {}
    old_reasons: dict[int, dict[str, Any]] = {}
    dispute_columns = (Dispute.id, Dispute.feature_id, Dispute.status, Dispute.resolution, Dispute.priority)
    for chunk in _chunks(list(fids.values())):
        for dispute in session.execute(select(*dispute_columns).where(Dispute.feature_id.in_(chunk))):
            existing[dispute.feature_id] = dispute
            old_reasons[dispute.id] = {}
        reason_rows = session.execute(
            select(DisputeReason.dispute_id, DisputeReason.reason, DisputeReason.details)
            .join(Dispute, Dispute.id == DisputeReason.dispute_id)
            .where(Dispute.feature_id.in_(chunk))
        )
        for dispute_id, reason, details in reason_rows:
            old_reasons[dispute_id][reason] = details

    now = utcnow()
    new_disputes: list[dict[str, Any]] = []
    new_reasons_by_feature: dict[int, dict[str, Any]] = {}
    updates: list[dict[str, Any]] = []
    replace_reasons: dict[int, dict[str, Any]] = {}
    counts = {"opened": 0, "updated": 0, "resolved": 0, "unchanged": 0}
    for decision in decisions:
        feature_id = fids[decision.feature_index]
        new = {name: _plain(details) for name, details in decision.reasons}
        dispute = existing.get(feature_id)
        old = old_reasons.get(dispute.id, {}) if dispute is not None else {}
        if "human_flag" in old and "human_flag" not in new and not _reviewer_resolved(dispute):
            new["human_flag"] = old["human_flag"]
        new_priority = priority(list(new.items()), density[feature_id]) if new else 0.0
        if dispute is None:
            if new:
                new_disputes.append({"feature_id": feature_id, "status": "open", "priority": new_priority})
                new_reasons_by_feature[feature_id] = new
                counts["opened"] += 1
            continue
        if _reviewer_resolved(dispute) and set(new) <= set(old):
            counts["unchanged"] += 1
            continue
        if not new:
            if dispute.status == "open":
                updates.append(_dispute_update(dispute, "resolved", "rules", 0.0, now))
                replace_reasons[dispute.id] = {}
                counts["resolved"] += 1
            else:
                counts["unchanged"] += 1
            continue
        reopened = dispute.status != "open"
        if reopened or dispute.priority != new_priority:
            updates.append(_dispute_update(dispute, "open", None, new_priority, now))
        if new != old:
            replace_reasons[dispute.id] = new
        if reopened:
            counts["opened"] += 1
        elif dispute.priority != new_priority or new != old:
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1

    if updates:
        table = Dispute.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=bindparam("status"),
                resolution=bindparam("resolution"),
                resolved_by=bindparam("resolved_by"),
                resolved_at=bindparam("resolved_at"),
                priority=bindparam("priority"),
                updated_at=bindparam("updated_at"),
            ),
            updates,
        )
    if new_disputes:
        upsert_rows(session, Dispute.__table__, new_disputes, keys=("feature_id",))
        new_ids = ids_by_key(session, Dispute.__table__, ("feature_id",), [(d["feature_id"],) for d in new_disputes])
        for feature_id, reasons in new_reasons_by_feature.items():
            replace_reasons[new_ids[(feature_id,)]] = reasons
    _replace_reasons(session, replace_reasons)
    session.flush()
    return DisputeWriteSummary(**counts)


def _reviewer_resolved(dispute: Any) -> bool:
    return dispute is not None and dispute.status == "resolved" and dispute.resolution == "reviewer"


def _dispute_update(dispute: Any, status: str, resolution: str | None, prio: float, now: datetime) -> dict:
    return {
        "b_id": dispute.id,
        "status": status,
        "resolution": resolution,
        "resolved_by": None,
        "resolved_at": now if status == "resolved" else None,
        "priority": prio,
        "updated_at": now,
    }


def _replace_reasons(session: Session, reasons_by_dispute: dict[int, dict[str, Any]]) -> None:
    """Make each dispute's reason rows exactly these (dispute id -> {reason: details})."""
    if not reasons_by_dispute:
        return
    for chunk in _chunks(list(reasons_by_dispute)):
        session.execute(delete(DisputeReason).where(DisputeReason.dispute_id.in_(chunk)))
    rows = [
        {"dispute_id": dispute_id, "reason": reason, "details": details}
        for dispute_id, reasons in reasons_by_dispute.items()
        for reason, details in _ordered_reasons(reasons)
    ]
    upsert_rows(session, DisputeReason.__table__, rows, keys=("dispute_id", "reason"))


def _stored_collision_partners(session: Session, *, sae_id: int, feature_indices: set[int]) -> set[int]:
    """Features outside `feature_indices` whose stored label_collision names one of them.

    They must be re-evaluated with the batch: the label they collided with may have changed.
    """
    rows = session.execute(
        select(Feature.feature_index, DisputeReason.details)
        .join(Dispute, Dispute.feature_id == Feature.id)
        .join(DisputeReason, DisputeReason.dispute_id == Dispute.id)
        .where(Feature.sae_id == sae_id, DisputeReason.reason == "label_collision")
    )
    partners = set()
    for index, details in rows:
        if index in feature_indices:
            continue
        named = {int(p["feature_index"]) for p in (details or {}).get("features", [])}
        if named & feature_indices:
            partners.add(index)
    return partners


def evaluate_and_store_disputes(
    session: Session,
    *,
    sae_id: int,
    config: LabelConfig,
    feature_indices: Sequence[int] | None = None,
    embed: Embedder = embed_texts,
) -> list[DisputeDecision]:
    """Set current labels, then load -> evaluate -> upsert disputes for the SAE (or a batch of it).

    With a batch, labels of the SAE's other features (earlier batches) count for collisions, and any
    other feature that collides with the batch now, or did before, is re-evaluated too, so both sides
    of a collision stay marked and a stale collision is cleared. Returns every decision written.
    """
    set_current_labels(session, sae_id=sae_id, feature_indices=feature_indices)
    inputs = load_dispute_inputs(session, sae_id=sae_id, feature_indices=feature_indices)
    others: list[LabelRef] = []
    if feature_indices is not None:
        batch = {f.feature_index for f in inputs}
        others = load_current_labels(session, sae_id=sae_id, exclude_feature_indices=batch)
        refs = [LabelRef(f.feature_index, c.text) for f in inputs if (c := best_candidate(f)) is not None]
        colliding = find_collisions(refs, config.collision_similarity, against=others, embed=embed)
        partners = {i for i in colliding if i not in batch}
        partners |= _stored_collision_partners(session, sae_id=sae_id, feature_indices=batch)
        if partners:
            inputs += load_dispute_inputs(session, sae_id=sae_id, feature_indices=sorted(partners))
            others = [ref for ref in others if ref.feature_index not in partners]
    decisions = evaluate_disputes(inputs, config, other_labels=others, embed=embed)
    upsert_disputes(session, sae_id=sae_id, decisions=decisions)
    return decisions


def _open_disputes_query(*, sae_id: int | None, job_id: int | None, reason: str | None) -> Select:
    query = (
        select(
            Dispute.id,
            Dispute.feature_id,
            Dispute.priority,
            Dispute.created_at,
            Dispute.updated_at,
            Feature.sae_id,
            Feature.feature_index,
            Feature.density,
            Feature.current_label_id,
            Label.text.label("current_label"),
        )
        .join(Feature, Feature.id == Dispute.feature_id)
        .outerjoin(Label, Label.id == Feature.current_label_id)
        .where(Dispute.status == "open")
    )
    if sae_id is not None:
        query = query.where(Feature.sae_id == sae_id)
    if job_id is not None:
        query = query.where(Feature.job_id == job_id)
    if reason is not None:
        query = query.where(
            Dispute.id.in_(select(DisputeReason.dispute_id).where(DisputeReason.reason == reason))
        )
    return query


def list_open_disputes(
    session: Session,
    *,
    sae_id: int | None = None,
    job_id: int | None = None,
    reason: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[OpenDispute]:
    """The review queue: open disputes, highest priority first (then SAE, feature index), one page.

    Filters: an SAE, the job that last computed the features' statistics, one reason name.
    """
    query = (
        _open_disputes_query(sae_id=sae_id, job_id=job_id, reason=reason)
        .order_by(Dispute.priority.desc(), Feature.sae_id, Feature.feature_index)
        .limit(limit)
        .offset(offset)
    )
    rows = session.execute(query).all()
    reasons: dict[int, dict[str, Any]] = {row.id: {} for row in rows}
    if reasons:
        for dispute_id, name, details in session.execute(
            select(DisputeReason.dispute_id, DisputeReason.reason, DisputeReason.details).where(
                DisputeReason.dispute_id.in_(list(reasons))
            )
        ):
            reasons[dispute_id][name] = details or {}
    return [
        OpenDispute(
            dispute_id=row.id,
            feature_id=row.feature_id,
            sae_id=row.sae_id,
            feature_index=row.feature_index,
            priority=row.priority,
            density=row.density,
            reasons=_ordered_reasons(reasons[row.id]),
            current_label_id=row.current_label_id,
            current_label=row.current_label,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


def count_open_disputes(
    session: Session, *, sae_id: int | None = None, job_id: int | None = None, reason: str | None = None
) -> int:
    """How many rows `list_open_disputes` would page through with the same filters."""
    query = _open_disputes_query(sae_id=sae_id, job_id=job_id, reason=reason)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def dispute_reason_counts(session: Session, *, sae_id: int | None = None) -> dict[str, int]:
    """Open disputes per reason (a dispute with two reasons counts under both), every reason listed."""
    query = (
        select(DisputeReason.reason, func.count())
        .join(Dispute, Dispute.id == DisputeReason.dispute_id)
        .where(Dispute.status == "open")
        .group_by(DisputeReason.reason)
    )
    if sae_id is not None:
        query = query.join(Feature, Feature.id == Dispute.feature_id).where(Feature.sae_id == sae_id)
    counts = {name: 0 for name in REASONS}
    counts.update({name: n for name, n in session.execute(query)})
    return counts
