"""Disputes in SQL on SQLite and PostgreSQL: idempotent writes, kept reviewer decisions, cross-batch collisions."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from labeler.config import LabelConfig
from labeler.store.disputes import (
    count_open_disputes,
    dispute_reason_counts,
    evaluate_and_store_disputes,
    list_open_disputes,
    load_dispute_inputs,
    set_current_labels,
)
from labeler.store.features import upsert_features
from labeler.store.labels import upsert_labels, upsert_scores
from labeler.store.models import Dispute, DisputeReason, Feature, Label
from labeler.store.sources import upsert_sae
from labeler.types import FeatureStats, LabelCandidate, ScoreResult

CONFIG = LabelConfig()


def make_sae(session: Session) -> int:
    return upsert_sae(
        session, name="test-sae", source="local", release=None, sae_id=None, path="/tmp/sae",
        model_name="tiny", hook_name="blocks.0.hook_resid_post", d_in=8, d_sae=16,
        architecture="standard", checksum="c" * 64,
    )


def add_features(session: Session, sae_id: int, densities: dict[int, float], job_id: int | None = None) -> dict[int, int]:
    stats = [
        FeatureStats(feature_index=i, n_tokens=100_000, n_firing=int(d * 100_000), max_activation=3.0,
                     sum_activation=d * 100_000, histogram_edges=(), histogram_counts=())
        for i, d in densities.items()
    ]
    return upsert_features(session, sae_id=sae_id, stats=stats, job_id=job_id)


def add_label(session: Session, fids: dict[int, int], index: int, text: str, **values: float) -> int:
    (label_id,) = upsert_labels(
        session, feature_ids=fids, candidates=[LabelCandidate(feature_index=index, text=text, source="llm", method="explain")]
    )
    upsert_scores(session, results=[(label_id, ScoreResult(m, "judge", v, 20)) for m, v in values.items()])
    return label_id


def snapshot(session: Session, sae_id: int) -> tuple:
    disputes = session.execute(
        select(Feature.feature_index, Dispute.status, Dispute.resolution, Dispute.priority, Dispute.updated_at)
        .join(Feature, Feature.id == Dispute.feature_id)
        .where(Feature.sae_id == sae_id)
        .order_by(Feature.feature_index)
    ).all()
    reasons = session.execute(
        select(Feature.feature_index, DisputeReason.reason, DisputeReason.details)
        .join(Dispute, Dispute.id == DisputeReason.dispute_id)
        .join(Feature, Feature.id == Dispute.feature_id)
        .order_by(Feature.feature_index, DisputeReason.reason)
    ).all()
    return [tuple(r) for r in disputes], [tuple(r) for r in reasons]


def reasons_by_feature(session: Session, sae_id: int) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for index, reason, _ in snapshot(session, sae_id)[1]:
        out.setdefault(index, set()).add(reason)
    return out


def status_of(session: Session, fid: int) -> tuple[str, str | None]:
    return tuple(session.execute(select(Dispute.status, Dispute.resolution).where(Dispute.feature_id == fid)).one())


def seed_mixed(session: Session) -> tuple[int, dict[int, int]]:
    sae = make_sae(session)
    fids = add_features(session, sae, {0: 1e-3, 1: 1e-2, 2: 1e-3, 3: 1e-3, 4: 1e-2, 5: 1e-5, 6: 0.0})
    add_label(session, fids, 0, "python function definitions", detection=0.9, embedding=0.85)
    add_label(session, fids, 1, "French cooking recipes", detection=0.4, embedding=0.7)
    add_label(session, fids, 2, "Criticism of EA", detection=0.9)
    add_label(session, fids, 3, "Criticism of Criticism of EA", detection=0.92)
    session.execute(
        update(Feature).where(Feature.id == fids[4]).values(label_state="failed", label_error="LLMError: 5 retries")
    )
    add_label(session, fids, 5, "python decorators", detection=0.8)
    add_label(session, fids, 5, "weather in Paris", detection=0.7)
    return sae, fids


def test_evaluate_and_store_writes_every_reason_once(session):
    sae, fids = seed_mixed(session)
    decisions = evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    session.commit()
    assert len(decisions) == 7
    assert reasons_by_feature(session, sae) == {
        1: {"low_score"},
        2: {"label_collision"},
        3: {"label_collision"},
        4: {"failed"},
        5: {"candidates_disagree"},
    }
    first = snapshot(session, sae)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    session.commit()
    assert snapshot(session, sae) == first  # same rows, same timestamps: nothing rewritten

    current = dict(session.execute(select(Feature.feature_index, Label.text).join(Label, Label.id == Feature.current_label_id)).all())
    assert current[0] == "python function definitions" and current[5] == "python decorators"
    assert 4 not in current and 6 not in current


def test_review_queue_queries(session):
    sae, fids = seed_mixed(session)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    queue = list_open_disputes(session, sae_id=sae, limit=10)
    # priorities: failed at density 1e-2 0.75; collisions at 1e-3 0.625; low score (severity 1/3) at 1e-2 0.5
    assert [d.feature_index for d in queue][:4] == [4, 2, 3, 1]
    assert [d.priority for d in queue] == sorted((d.priority for d in queue), reverse=True)
    assert queue[0].reason_names == ("failed",) and queue[0].current_label is None
    assert {d.feature_index: d.current_label for d in queue}[1] == "French cooking recipes"
    assert count_open_disputes(session, sae_id=sae) == 5
    page = list_open_disputes(session, sae_id=sae, limit=2, offset=2)
    assert [d.feature_index for d in page] == [d.feature_index for d in queue[2:4]]
    collisions = list_open_disputes(session, reason="label_collision")
    assert sorted(d.feature_index for d in collisions) == [2, 3]
    assert count_open_disputes(session, reason="label_collision") == 2
    assert list_open_disputes(session, job_id=12345) == [] and list_open_disputes(session, sae_id=sae + 1) == []
    counts = dispute_reason_counts(session, sae_id=sae)
    assert counts == {"low_score": 1, "candidates_disagree": 1, "scorers_disagree": 0,
                      "label_collision": 2, "failed": 1, "human_flag": 0}


def test_reviewer_resolution_survives_the_same_reasons_and_new_ones_reopen(session):
    sae = make_sae(session)
    fids = add_features(session, sae, {0: 1e-3})
    add_label(session, fids, 0, "French cooking recipes", detection=0.4)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    assert status_of(session, fids[0]) == ("open", None)
    session.execute(
        update(Dispute).where(Dispute.feature_id == fids[0]).values(status="resolved", resolution="reviewer", resolved_by=None)
    )
    reviewed = snapshot(session, sae)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    assert snapshot(session, sae) == reviewed  # same reasons: the reviewer's decision stands

    add_label(session, fids, 0, "python decorators", detection=0.3)  # a new candidate that disagrees
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    assert status_of(session, fids[0]) == ("open", None)
    assert reasons_by_feature(session, sae) == {0: {"low_score", "candidates_disagree"}}


def test_rules_resolve_a_dispute_that_no_longer_fires_but_keep_human_flags(session):
    sae = make_sae(session)
    fids = add_features(session, sae, {0: 1e-3, 1: 1e-3})
    low = add_label(session, fids, 0, "French cooking recipes", detection=0.4)
    add_label(session, fids, 1, "python decorators", detection=0.9)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    flagged = session.scalar(select(Dispute.id).where(Dispute.feature_id == fids[1]))
    assert flagged is None
    session.add(Dispute(feature_id=fids[1], status="open", priority=1.0))
    session.flush()
    dispute_id = session.scalar(select(Dispute.id).where(Dispute.feature_id == fids[1]))
    session.add(DisputeReason(dispute_id=dispute_id, reason="human_flag", details={"note": "too broad"}))
    session.flush()

    upsert_scores(session, results=[(low, ScoreResult("detection", "judge", 0.9, 20))])
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG)
    assert status_of(session, fids[0]) == ("resolved", "rules")
    assert reasons_by_feature(session, sae) == {1: {"human_flag"}}
    assert status_of(session, fids[1]) == ("open", None)
    (item,) = list_open_disputes(session, sae_id=sae)
    assert item.reasons == (("human_flag", {"note": "too broad"}),) and item.priority > 1.0
    assert load_dispute_inputs(session, sae_id=sae, feature_indices=[1])[0].human_flag == {"note": "too broad"}


def test_collision_with_a_feature_labelled_in_an_earlier_batch(session):
    sae = make_sae(session)
    fids = add_features(session, sae, {0: 1e-3, 1: 1e-3, 2: 1e-3})
    add_label(session, fids, 0, "Criticism of EA", detection=0.9)
    add_label(session, fids, 1, "python decorators", detection=0.9)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG, feature_indices=[0, 1])
    assert reasons_by_feature(session, sae) == {}

    old = add_label(session, fids, 2, "Criticism of Criticism of EA", detection=0.9)
    decisions = evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG, feature_indices=[2])
    assert sorted(d.feature_index for d in decisions) == [0, 2]  # the earlier feature is re-decided too
    assert reasons_by_feature(session, sae) == {0: {"label_collision"}, 2: {"label_collision"}}

    # feature 2 is relabelled: the stale collision on feature 0 is cleared as well
    session.execute(update(Label).where(Label.id == old).values(status="rejected"))
    add_label(session, fids, 2, "numbers in tables", detection=0.9)
    evaluate_and_store_disputes(session, sae_id=sae, config=CONFIG, feature_indices=[2])
    assert reasons_by_feature(session, sae) == {}
    assert status_of(session, fids[0]) == ("resolved", "rules")


def test_set_current_labels_prefers_an_accepted_label(session):
    sae = make_sae(session)
    fids = add_features(session, sae, {0: 1e-3})
    add_label(session, fids, 0, "weak label", detection=0.6)
    strong = add_label(session, fids, 0, "strong label", detection=0.9, embedding=0.8)
    assert set_current_labels(session, sae_id=sae) == 1
    assert set_current_labels(session, sae_id=sae) == 0
    assert session.scalar(select(Feature.current_label_id).where(Feature.id == fids[0])) == strong
    (human,) = upsert_labels(
        session, feature_ids=fids,
        candidates=[LabelCandidate(feature_index=0, text="what a reviewer wrote", source="human", method="review")],
    )
    session.execute(update(Label).where(Label.id == human).values(status="accepted"))
    assert set_current_labels(session, sae_id=sae, feature_indices=[0]) == 1
    assert session.scalar(select(Feature.current_label_id).where(Feature.id == fids[0])) == human
