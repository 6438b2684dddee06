"""store.review on both dialects: the queue, search and every decision, straight through the store."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labeler.errors import ConfigError, NotFoundError
from labeler.store import review
from labeler.store.models import Dispute, Label, ReviewEvent
from web_seed import seed

WHO = {"user_id": None, "user_name": "tester"}


@pytest.fixture
def seeded_session(session):
    return session, seed(session)


def test_queue_and_reason_counts(seeded_session):
    session, s = seeded_session
    items = review.list_review_queue(session)
    assert [i.feature_index for i in items] == [0, 1]
    assert items[0].label_text == "cats sitting on mats" and items[0].reasons == ("candidates_disagree", "low_score")
    counts = review.review_reason_counts(session)
    assert list(counts.items())[:2] == [("low_score", 2), ("candidates_disagree", 1)]
    assert set(counts.values()) == {2, 1, 0}
    assert review.count_review_queue(session, reason="low_score") == 2
    assert review.queue_filters(session).saes == ((s.sae_id, "toy-sae"),)


def test_search_is_case_insensitive_and_literal(seeded_session):
    session, _ = seeded_session
    assert [h.text for h in review.search_labels(session, query="ANIMAL")] == ["animal nouns"]
    assert review.search_labels(session, query="_") == []
    assert review.search_labels(session, query="%") == []
    assert len(review.search_labels(session, source="llm")) == 2


def test_decisions_keep_one_accepted_label_and_audit_each_step(seeded_session):
    session, s = seeded_session
    fid = s.feature_ids[0]
    first, second = s.label_ids["cats sitting on mats"], s.label_ids["animal nouns"]
    review.accept_label(session, feature_id=fid, label_id=first, **WHO)
    review.edit_and_accept(session, feature_id=fid, text="cats, mostly", **WHO)
    review.accept_label(session, feature_id=fid, label_id=second, **WHO)
    session.commit()
    statuses = dict(session.execute(select(Label.text, Label.status).where(Label.feature_id == fid)).all())
    assert statuses == {"cats sitting on mats": "superseded", "cats, mostly": "superseded", "animal nouns": "accepted"}

    outcome = review.reject_and_flag(session, feature_id=fid, note="none fit", **WHO)
    session.commit()
    assert outcome.current_label_id is None and outcome.dispute_status == "open"
    statuses = dict(session.execute(select(Label.text, Label.status).where(Label.feature_id == fid)).all())
    assert statuses["animal nouns"] == "rejected", "the live label is rejected"
    assert statuses["cats, mostly"] == "superseded", "history stays as it was"

    review.record_relabel(session, feature_id=fid, explain_model="bigger-llm", **WHO)
    review.add_note(session, feature_id=fid, note="waiting for new candidates", **WHO)
    session.commit()
    events = session.scalars(select(ReviewEvent).where(ReviewEvent.feature_id == fid).order_by(ReviewEvent.id)).all()
    assert [e.action for e in events] == ["accept", "edit", "accept", "reject", "relabel", "note"]
    assert events[4].after["explain_model"] == "bigger-llm"
    assert events[3].before["current_label_id"] == second and events[3].after["current_label_id"] is None
    assert session.scalar(select(Dispute.status).where(Dispute.feature_id == fid)) == "open"


def test_flagging_a_feature_without_a_dispute_opens_one(seeded_session):
    session, s = seeded_session
    fid = s.feature_ids[2]  # dead feature, never disputed
    review.reject_and_flag(session, feature_id=fid, **WHO)
    session.commit()
    detail = review.load_feature_detail(session, feature_id=fid)
    assert detail.dispute.status == "open" and [r.reason for r in detail.dispute.reasons] == ["human_flag"]
    assert [i.feature_index for i in review.list_review_queue(session)] == [2, 0, 1], "a human flag goes first"


def test_refusals(seeded_session):
    session, s = seeded_session
    with pytest.raises(NotFoundError):
        review.accept_label(session, feature_id=s.feature_ids[1], label_id=s.label_ids["animal nouns"], **WHO)
    with pytest.raises(NotFoundError):
        review.load_feature_detail(session, feature_id=10_000)
    with pytest.raises(ConfigError, match="empty"):
        review.edit_and_accept(session, feature_id=s.feature_ids[0], text=" \n ", **WHO)
    with pytest.raises(ConfigError, match="NUL"):
        review.add_note(session, feature_id=s.feature_ids[0], note="a\x00b", **WHO)
