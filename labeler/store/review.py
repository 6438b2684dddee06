"""Reads and decisions behind the review UI: the queue, one feature in full, label search, review actions.

Every action runs inside the caller's transaction: it locks the feature row (FOR UPDATE on PostgreSQL, so
two reviewers deciding at once are serialised), changes label statuses, `features.current_label_id` and
the dispute, and writes one `review_events` row with a before/after snapshot. The caller commits once,
so either all of it lands or none of it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from labeler.errors import ConfigError, NotFoundError
from labeler.store.features import window_from_row
from labeler.disputes import priority
from labeler.store import disputes as store_disputes
from labeler.store.labels import upsert_labels
from labeler.store.models import (
    SAE,
    Dataset,
    Dispute,
    DisputeReason,
    Example,
    Feature,
    Label,
    ReviewEvent,
    Score,
    Sequence,
    utcnow,
)
from labeler.store.queries import like_pattern
from labeler.store.sources import load_vocab
from labeler.store.upsert import upsert_rows
from labeler.types import LabelCandidate, Window

HUMAN_FLAG = "human_flag"
MAX_LABEL_CHARS = 500
MAX_NOTE_CHARS = 4000
# Statuses a decision replaces; a rejected label stays rejected when another one is accepted.
LIVE_STATUSES = ("candidate", "accepted")


# ---------------------------------------------------------------- views


@dataclass(frozen=True)
class QueueItem:
    dispute_id: int
    feature_id: int
    sae_id: int
    sae_name: str
    feature_index: int
    priority: float
    density: float
    reasons: tuple[str, ...]
    label_text: str | None  # the current label, else the first candidate
    n_candidates: int
    updated_at: datetime


@dataclass(frozen=True)
class QueueFilters:
    """What the queue can be filtered by: SAEs and jobs that have open disputes."""

    saes: tuple[tuple[int, str], ...]
    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class ScoreView:
    method: str
    scorer_model: str
    value: float | None
    n_examples: int
    details: dict[str, Any] | None


@dataclass(frozen=True)
class LabelView:
    id: int
    text: str
    source: str
    method: str
    model: str
    status: str
    is_current: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    created_at: datetime
    scores: tuple[ScoreView, ...]


@dataclass(frozen=True)
class ReasonView:
    reason: str
    details: dict[str, Any] | None


@dataclass(frozen=True)
class DisputeView:
    id: int
    status: str
    priority: float
    reasons: tuple[ReasonView, ...]


@dataclass(frozen=True)
class StoredExample:
    """A window (token strings decoded) and, when the sequence was kept, its whole context decoded."""

    window: Window
    context_strs: tuple[str, ...] | None


@dataclass(frozen=True)
class EventView:
    id: int
    action: str
    user_name: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class FeatureDetail:
    id: int
    sae_id: int
    sae_name: str
    model_name: str
    hook_name: str
    feature_index: int
    dataset_name: str | None
    job_id: int | None
    n_tokens: int
    n_firing: int
    density: float
    max_activation: float
    mean_activation: float
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]
    is_dead: bool
    is_rare: bool
    label_state: str
    label_error: str | None
    current_label_id: int | None
    labels: tuple[LabelView, ...]
    dispute: DisputeView | None
    examples: tuple[StoredExample, ...]
    events: tuple[EventView, ...]


@dataclass(frozen=True)
class LabelHit:
    label_id: int
    feature_id: int
    sae_id: int
    sae_name: str
    feature_index: int
    text: str
    source: str
    status: str
    is_current: bool
    scores: dict[str, float | None]


@dataclass(frozen=True)
class ReviewOutcome:
    event_id: int
    feature_id: int
    action: str
    current_label_id: int | None
    dispute_status: str | None


# ---------------------------------------------------------------- queue


def list_review_queue(
    session: Session,
    *,
    sae_id: int | None = None,
    job_id: int | None = None,
    reason: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[QueueItem]:
    """One page of the queue (store.disputes' order: priority first), with what the page shows per row."""
    disputes = store_disputes.list_open_disputes(
        session, sae_id=sae_id, job_id=job_id, reason=reason, limit=limit, offset=offset
    )
    feature_ids = [d.feature_id for d in disputes]
    sae_names = dict(sae_choices(session))
    first_candidate: dict[int, str] = {}
    n_candidates: dict[int, int] = dict.fromkeys(feature_ids, 0)
    if feature_ids:
        for feature_id, text in session.execute(
            select(Label.feature_id, Label.text)
            .where(Label.feature_id.in_(feature_ids), Label.status == "candidate")
            .order_by(Label.feature_id, Label.id)
        ):
            first_candidate.setdefault(feature_id, text)
            n_candidates[feature_id] += 1
    return [
        QueueItem(
            dispute_id=d.dispute_id,
            feature_id=d.feature_id,
            sae_id=d.sae_id,
            sae_name=sae_names[d.sae_id],
            feature_index=d.feature_index,
            priority=d.priority,
            density=d.density,
            reasons=tuple(sorted(d.reason_names)),
            label_text=d.current_label or first_candidate.get(d.feature_id),
            n_candidates=n_candidates[d.feature_id],
            updated_at=d.updated_at,
        )
        for d in disputes
    ]


def count_review_queue(
    session: Session, *, sae_id: int | None = None, job_id: int | None = None, reason: str | None = None
) -> int:
    return store_disputes.count_open_disputes(session, sae_id=sae_id, job_id=job_id, reason=reason)


def review_reason_counts(session: Session, *, sae_id: int | None = None) -> dict[str, int]:
    """Open disputes per reason within an SAE (or all), most frequent first; reasons with none included."""
    counts = store_disputes.dispute_reason_counts(session, sae_id=sae_id)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def queue_filters(session: Session) -> QueueFilters:
    saes = [
        (sae_id, name)
        for sae_id, name in session.execute(
            select(SAE.id, SAE.name)
            .where(
                select(Feature.id).join(Dispute, Dispute.feature_id == Feature.id).where(Feature.sae_id == SAE.id).exists()
            )
            .order_by(SAE.id)
        )
    ]
    job_ids = session.scalars(
        select(Feature.job_id)
        .join(Dispute, Dispute.feature_id == Feature.id)
        .where(Feature.job_id.is_not(None))
        .distinct()
        .order_by(Feature.job_id)
    )
    return QueueFilters(saes=tuple(saes), job_ids=tuple(job_ids))


# ---------------------------------------------------------------- one feature


def find_feature_id(session: Session, *, sae_id: int, feature_index: int) -> int:
    feature_id = session.scalar(
        select(Feature.id).where(Feature.sae_id == sae_id, Feature.feature_index == feature_index)
    )
    if feature_id is None:
        raise NotFoundError(f"SAE {sae_id} has no stored feature {feature_index}")
    return feature_id


def _get_feature(session: Session, feature_id: int, *, lock: bool = False) -> Feature:
    query = select(Feature).where(Feature.id == feature_id)
    if lock:
        query = query.with_for_update()
    feature = session.scalar(query)
    if feature is None:
        raise NotFoundError(f"feature {feature_id} does not exist")
    return feature


def _label_views(session: Session, feature: Feature) -> tuple[LabelView, ...]:
    labels = session.scalars(select(Label).where(Label.feature_id == feature.id).order_by(Label.id)).all()
    scores: dict[int, list[ScoreView]] = {lb.id: [] for lb in labels}
    if labels:
        for s in session.scalars(
            select(Score).where(Score.label_id.in_(list(scores))).order_by(Score.method, Score.scorer_model)
        ):
            scores[s.label_id].append(
                ScoreView(s.method, s.scorer_model, s.value, s.n_examples, s.details)
            )
    return tuple(
        LabelView(
            id=lb.id,
            text=lb.text,
            source=lb.source,
            method=lb.method,
            model=lb.model,
            status=lb.status,
            is_current=lb.id == feature.current_label_id,
            prompt_tokens=lb.prompt_tokens,
            completion_tokens=lb.completion_tokens,
            cost_usd=lb.cost_usd,
            created_at=lb.created_at,
            scores=tuple(scores[lb.id]),
        )
        for lb in labels
    )


def _dispute_view(session: Session, feature_id: int) -> DisputeView | None:
    dispute = session.scalar(select(Dispute).where(Dispute.feature_id == feature_id))
    if dispute is None:
        return None
    reasons = session.scalars(
        select(DisputeReason).where(DisputeReason.dispute_id == dispute.id).order_by(DisputeReason.reason)
    )
    return DisputeView(
        id=dispute.id,
        status=dispute.status,
        priority=dispute.priority,
        reasons=tuple(ReasonView(r.reason, r.details) for r in reasons),
    )


def _examples(session: Session, feature_id: int) -> tuple[StoredExample, ...]:
    """Windows with their whole sequences, every token decoded through the dataset's tokenizer vocab."""
    rows = session.scalars(
        select(Example)
        .where(Example.feature_id == feature_id)
        .order_by(Example.kind, Example.quantile, Example.rank)
    ).all()
    if not rows:
        return ()
    keys = sorted({(r.dataset_id, r.seq_index) for r in rows})
    sequences = {
        (d, i): np.frombuffer(blob, dtype="<i4")
        for d, i, blob in session.execute(
            select(Sequence.dataset_id, Sequence.seq_index, Sequence.token_ids).where(
                tuple_(Sequence.dataset_id, Sequence.seq_index).in_(keys)
            )
        )
    }
    tokenizers = {
        dataset_id: tokenizer
        for dataset_id, tokenizer in session.execute(
            select(Dataset.id, Dataset.tokenizer).where(Dataset.id.in_({d for d, _ in keys}))
        )
    }
    vocabs: dict[int, dict[int, str]] = {}
    for dataset_id, tokenizer in tokenizers.items():
        ids: set[int] = set()
        for r in rows:
            if r.dataset_id == dataset_id:
                ids.update(int(t) for t in np.frombuffer(r.token_ids, dtype="<i4"))
        for (d, _), seq in sequences.items():
            if d == dataset_id:
                ids.update(int(t) for t in seq)
        vocabs[dataset_id] = load_vocab(session, tokenizer=tokenizer, token_ids=ids)

    def decode(dataset_id: int, token_ids) -> tuple[str, ...]:
        vocab = vocabs.get(dataset_id, {})
        return tuple(vocab.get(int(t), f"<{int(t)}>") for t in token_ids)

    out = []
    for r in rows:
        seq = sequences.get((r.dataset_id, r.seq_index))
        window = window_from_row(r, vocabs.get(r.dataset_id, {}))
        out.append(StoredExample(window, None if seq is None else decode(r.dataset_id, seq)))
    return tuple(out)


def _events(session: Session, feature_id: int) -> tuple[EventView, ...]:
    events = session.scalars(
        select(ReviewEvent).where(ReviewEvent.feature_id == feature_id).order_by(ReviewEvent.id.desc())
    )
    return tuple(
        EventView(e.id, e.action, e.user_name, e.before, e.after, e.note, e.created_at) for e in events
    )


def load_feature_detail(session: Session, *, feature_id: int, with_examples: bool = True) -> FeatureDetail:
    """Everything a reviewer needs to decide on one feature, in a handful of queries."""
    feature = _get_feature(session, feature_id)
    sae = session.get(SAE, feature.sae_id)
    dataset = session.get(Dataset, feature.dataset_id) if feature.dataset_id is not None else None
    hist = feature.histogram or {}
    return FeatureDetail(
        id=feature.id,
        sae_id=feature.sae_id,
        sae_name=sae.name,
        model_name=sae.model_name,
        hook_name=sae.hook_name,
        feature_index=feature.feature_index,
        dataset_name=None if dataset is None else dataset.name,
        job_id=feature.job_id,
        n_tokens=feature.n_tokens,
        n_firing=feature.n_firing,
        density=feature.density,
        max_activation=feature.max_activation,
        mean_activation=feature.mean_activation,
        histogram_edges=tuple(float(x) for x in hist.get("edges", ())),
        histogram_counts=tuple(int(x) for x in hist.get("counts", ())),
        is_dead=feature.is_dead,
        is_rare=feature.is_rare,
        label_state=feature.label_state,
        label_error=feature.label_error,
        current_label_id=feature.current_label_id,
        labels=_label_views(session, feature),
        dispute=_dispute_view(session, feature.id),
        examples=_examples(session, feature.id) if with_examples else (),
        events=_events(session, feature.id),
    )


def feature_sae_index(session: Session, *, feature_id: int) -> tuple[int, int]:
    """(sae id, feature index) of a feature id; what the activation engine needs to run it again."""
    feature = _get_feature(session, feature_id)
    return feature.sae_id, feature.feature_index


# ---------------------------------------------------------------- search


def search_labels(
    session: Session,
    *,
    query: str | None = None,
    sae_id: int | None = None,
    status: str | None = None,
    source: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[LabelHit]:
    """Labels whose text contains `query` (case-insensitive), newest feature first within an SAE."""
    stmt = (
        select(Label, Feature, SAE.name)
        .join(Feature, Feature.id == Label.feature_id)
        .join(SAE, SAE.id == Feature.sae_id)
    )
    if query:
        stmt = stmt.where(Label.text.ilike(like_pattern(query), escape="\\"))
    if sae_id is not None:
        stmt = stmt.where(Feature.sae_id == sae_id)
    if status is not None:
        stmt = stmt.where(Label.status == status)
    if source is not None:
        stmt = stmt.where(Label.source == source)
    rows = session.execute(
        stmt.order_by(Feature.sae_id, Feature.feature_index, Label.id).limit(limit).offset(offset)
    ).all()
    scores: dict[int, dict[str, float | None]] = {label.id: {} for label, _, _ in rows}
    if scores:
        for label_id, method, value in session.execute(
            select(Score.label_id, Score.method, Score.value)
            .where(Score.label_id.in_(list(scores)))
            .order_by(Score.method, Score.scorer_model)
        ):
            scores[label_id].setdefault(method, value)
    return [
        LabelHit(
            label_id=label.id,
            feature_id=feature.id,
            sae_id=feature.sae_id,
            sae_name=sae_name,
            feature_index=feature.feature_index,
            text=label.text,
            source=label.source,
            status=label.status,
            is_current=label.id == feature.current_label_id,
            scores=scores[label.id],
        )
        for label, feature, sae_name in rows
    ]


def sae_choices(session: Session) -> list[tuple[int, str]]:
    return [(sae_id, name) for sae_id, name in session.execute(select(SAE.id, SAE.name).order_by(SAE.id))]


# ---------------------------------------------------------------- actions


def _check_storable(text: str, what: str) -> None:
    if "\x00" in text:
        raise ConfigError(f"the {what} contains a NUL character, which SQL text cannot hold")


def _clean_text(text: str, *, what: str, max_chars: int) -> str:
    _check_storable(text, what)
    text = " ".join(text.split())
    if not text:
        raise ConfigError(f"the {what} is empty; type some text")
    if len(text) > max_chars:
        raise ConfigError(f"the {what} has {len(text)} characters; keep it under {max_chars}")
    return text


def _clean_note(note: str | None) -> str | None:
    if note is None or not note.strip():
        return None
    _check_storable(note, "note")
    if len(note) > MAX_NOTE_CHARS:
        raise ConfigError(f"the note has {len(note)} characters; keep it under {MAX_NOTE_CHARS}")
    return note.strip()


def _snapshot(session: Session, feature: Feature) -> dict[str, Any]:
    labels = session.execute(
        select(Label.id, Label.text, Label.status).where(Label.feature_id == feature.id).order_by(Label.id)
    ).all()
    dispute = session.scalar(select(Dispute.status).where(Dispute.feature_id == feature.id))
    current = next((text for i, text, _ in labels if i == feature.current_label_id), None)
    return {
        "current_label_id": feature.current_label_id,
        "current_label": current,
        "labels": {str(i): status for i, _, status in labels},
        "dispute": dispute,
    }


def _set_current_label(session: Session, feature: Feature, label_id: int) -> None:
    session.execute(
        update(Label)
        .where(Label.feature_id == feature.id, Label.id != label_id, Label.status.in_(LIVE_STATUSES))
        .values(status="superseded")
    )
    session.execute(update(Label).where(Label.id == label_id).values(status="accepted"))
    session.execute(
        update(Feature)
        .where(Feature.id == feature.id)
        .values(current_label_id=label_id, label_state="labelled", updated_at=utcnow())
    )
    feature.current_label_id = label_id


def _resolve_dispute(session: Session, feature_id: int, *, user_id: int | None) -> None:
    """A person decided: close the feature's dispute, if it has one (a label search can lead anywhere).

    Its reasons stay as the record of what the reviewer saw; re-evaluation (store.disputes) reopens it
    only for a reason not among them.
    """
    now = utcnow()
    session.execute(
        update(Dispute)
        .where(Dispute.feature_id == feature_id)
        .values(status="resolved", resolution="reviewer", resolved_by=user_id, resolved_at=now, updated_at=now)
    )


def _flag(session: Session, feature: Feature, *, user_id: int | None, user_name: str, note: str | None) -> None:
    """Open (or reopen) the feature's dispute with a human_flag reason; the rules never remove it.

    Priority comes from the same formula as the rules' (labeler.disputes.priority: a flag puts it first).
    """
    now = utcnow()
    flag = {"user_id": user_id, "user_name": user_name, "note": note, "flagged_at": now.isoformat()}
    upsert_rows(
        session,
        Dispute.__table__,
        [{"feature_id": feature.id, "status": "open", "priority": 0.0, "created_at": now, "updated_at": now}],
        keys=("feature_id",),
        update=("status", "updated_at"),
    )
    dispute_id = session.scalar(select(Dispute.id).where(Dispute.feature_id == feature.id))
    upsert_rows(
        session,
        DisputeReason.__table__,
        [{"dispute_id": dispute_id, "reason": HUMAN_FLAG, "details": flag}],
        keys=("dispute_id", "reason"),
    )
    reasons = session.execute(
        select(DisputeReason.reason, DisputeReason.details).where(DisputeReason.dispute_id == dispute_id)
    ).all()
    session.execute(
        update(Dispute)
        .where(Dispute.id == dispute_id)
        .values(
            priority=priority([(name, details or {}) for name, details in reasons], feature.density),
            resolution=None,
            resolved_by=None,
            resolved_at=None,
        )
    )


def _record(
    session: Session,
    feature: Feature,
    *,
    action: str,
    user_id: int | None,
    user_name: str,
    before: dict[str, Any],
    note: str | None,
    extra: dict[str, Any] | None = None,
) -> ReviewOutcome:
    session.flush()
    after = _snapshot(session, feature)
    if extra:
        after = {**after, **extra}
    event = ReviewEvent(
        feature_id=feature.id,
        user_id=user_id,
        user_name=user_name,
        action=action,
        before=before,
        after=after,
        note=note,
    )
    session.add(event)
    session.flush()
    return ReviewOutcome(event.id, feature.id, action, after["current_label_id"], after["dispute"])


def accept_label(
    session: Session, *, feature_id: int, label_id: int, user_id: int | None, user_name: str, note: str | None = None
) -> ReviewOutcome:
    """Make one label the feature's accepted label; the other live ones become superseded; resolve."""
    feature = _get_feature(session, feature_id, lock=True)
    owner = session.scalar(select(Label.feature_id).where(Label.id == label_id))
    if owner != feature_id:
        raise NotFoundError(f"label {label_id} is not a label of feature {feature_id}")
    before = _snapshot(session, feature)
    _set_current_label(session, feature, label_id)
    _resolve_dispute(session, feature_id, user_id=user_id)
    return _record(
        session, feature, action="accept", user_id=user_id, user_name=user_name, before=before, note=_clean_note(note)
    )


def edit_and_accept(
    session: Session, *, feature_id: int, text: str, user_id: int | None, user_name: str, note: str | None = None
) -> ReviewOutcome:
    """Write the reviewer's own text as a source=human label and accept it; resolve the dispute."""
    text = _clean_text(text, what="label", max_chars=MAX_LABEL_CHARS)
    feature = _get_feature(session, feature_id, lock=True)
    before = _snapshot(session, feature)
    candidate = LabelCandidate(feature_index=feature.feature_index, text=text, source="human", method="review")
    (label_id,) = upsert_labels(session, feature_ids={feature.feature_index: feature.id}, candidates=[candidate])
    _set_current_label(session, feature, label_id)
    _resolve_dispute(session, feature_id, user_id=user_id)
    return _record(
        session, feature, action="edit", user_id=user_id, user_name=user_name, before=before, note=_clean_note(note)
    )


def reject_and_flag(
    session: Session, *, feature_id: int, user_id: int | None, user_name: str, note: str | None = None
) -> ReviewOutcome:
    """Reject every live label and flag the feature (human_flag reason).

    The dispute stays open on purpose: no label is right yet, and a flag is a request for attention.
    """
    note = _clean_note(note)
    feature = _get_feature(session, feature_id, lock=True)
    before = _snapshot(session, feature)
    session.execute(
        update(Label).where(Label.feature_id == feature_id, Label.status.in_(LIVE_STATUSES)).values(status="rejected")
    )
    session.execute(
        update(Feature).where(Feature.id == feature_id).values(current_label_id=None, updated_at=utcnow())
    )
    feature.current_label_id = None
    _flag(session, feature, user_id=user_id, user_name=user_name, note=note)
    return _record(session, feature, action="reject", user_id=user_id, user_name=user_name, before=before, note=note)


def record_relabel(
    session: Session,
    *,
    feature_id: int,
    user_id: int | None,
    user_name: str,
    explain_model: str | None = None,
    note: str | None = None,
) -> ReviewOutcome:
    """Audit a relabel request that the pipeline has already accepted.

    The dispute is left alone: the new candidates go through the dispute rules again (in-process at once,
    or when the llm task runs), and those decide whether it stays open. Call this after the request,
    never while holding the feature lock around it: an in-process relabel writes the same rows.
    """
    feature = _get_feature(session, feature_id, lock=True)
    before = _snapshot(session, feature)
    return _record(
        session,
        feature,
        action="relabel",
        user_id=user_id,
        user_name=user_name,
        before=before,
        note=_clean_note(note),
        extra={"explain_model": explain_model},
    )


def add_note(session: Session, *, feature_id: int, user_id: int | None, user_name: str, note: str) -> ReviewOutcome:
    """A comment on the feature; changes no label and no dispute."""
    note = _clean_note(note)
    if note is None:
        raise ConfigError("the note is empty; type some text")
    feature = _get_feature(session, feature_id, lock=True)
    before = _snapshot(session, feature)
    return _record(session, feature, action="note", user_id=user_id, user_name=user_name, before=before, note=note)
