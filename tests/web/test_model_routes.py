"""Routes that run real work in-process (no broker): "relabel" runs the offline explainer and scorers,
then the dispute rules. Slow-ish (model loads), so each is exercised once."""

from __future__ import annotations

from sqlalchemy import select

from labeler.store.models import Label, ReviewEvent
from web_helpers import sign_in
from web_seed import REVIEWER


def test_relabel_adds_candidates_and_audits_the_request(client, seeded, db_session):
    fid = seeded.feature_ids[0]
    csrf = sign_in(client, *REVIEWER)
    response = client.post(f"/features/{fid}/relabel", data={"note": "need more", "csrf_token": csrf})
    assert response.status_code == 200 and "Relabel requested." in response.text
    db_session.expire_all()
    sources = [s for (s,) in db_session.execute(select(Label.source).where(Label.feature_id == fid))]
    assert sources.count("offline") >= 1, "the offline explainer proposed a new candidate"
    (event,) = db_session.scalars(select(ReviewEvent).where(ReviewEvent.feature_id == fid)).all()
    assert (event.action, event.user_name, event.note, event.after["explain_model"]) == ("relabel", "rita", "need more", None)
