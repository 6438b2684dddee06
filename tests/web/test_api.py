"""The JSON API with bearer tokens: queue, feature, decisions, search, jobs, error mapping."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labeler.store import jobs as store_jobs
from labeler.store.models import Dispute, DisputeReason, Feature, Label, ReviewEvent, User
from web_helpers import sign_in
from web_seed import ADMIN, add_job


@pytest.fixture
def api(client, seeded):
    client.headers["Authorization"] = f"Bearer {seeded.reviewer_token}"
    return client


def test_queue_orders_by_priority_counts_reasons_and_filters(api, seeded):
    body = api.get("/api/review/queue").json()
    assert body["total"] == 2
    assert {r: n for r, n in body["reason_counts"].items() if n} == {"low_score": 2, "candidates_disagree": 1}
    assert body["reason_counts"]["human_flag"] == 0, "every reason is listed"
    assert [i["feature_index"] for i in body["items"]] == [0, 1]
    assert body["items"][0]["reasons"] == ["candidates_disagree", "low_score"]
    assert body["items"][0]["n_candidates"] == 2

    only = api.get("/api/review/queue", params={"reason": "candidates_disagree"}).json()
    assert only["total"] == 1 and only["items"][0]["feature_index"] == 0
    assert api.get("/api/review/queue", params={"sae_id": seeded.sae_id + 1}).json()["total"] == 0
    page_two = api.get("/api/review/queue", params={"limit": 1, "offset": 1}).json()
    assert [i["feature_index"] for i in page_two["items"]] == [1] and page_two["total"] == 2


def test_feature_has_full_contexts_labels_scores_and_reasons(api, seeded):
    feature = api.get(f"/api/features/{seeded.feature_ids[0]}").json()
    assert feature["feature_index"] == 0 and feature["density"] == pytest.approx(12 / 96)
    assert [e["kind"] for e in feature["examples"]] == ["top", "top", "quantile", "quantile", "negative"]
    top = feature["examples"][0]
    assert top["full_context"] and len(top["tokens"]) == 16
    values = [t["activation"] for t in top["tokens"]]
    assert values[:2] == [None, None] and values[12:] == [None] * 4  # outside the stored window 2..12
    assert max(v for v in values if v is not None) == pytest.approx(5.1)
    labels = {lb["text"]: lb for lb in feature["labels"]}
    assert {s["method"]: s["value"] for s in labels["cats sitting on mats"]["scores"]} == {"detection": 0.55, "embedding": 0.61}
    assert labels["animal nouns"]["scores"][1]["details"] == {"skipped": "no logprobs"}
    assert [r["reason"] for r in feature["dispute"]["reasons"]] == ["candidates_disagree", "low_score"]

    by_index = api.get(f"/api/saes/{seeded.sae_id}/features/0").json()
    assert by_index["id"] == seeded.feature_ids[0]


def test_unknown_ids_are_404_with_the_error_name(api, seeded):
    for path in ("/api/features/999999", f"/api/saes/{seeded.sae_id}/features/77", "/api/jobs/424242"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "NotFoundError"
    wrong_label = api.post(f"/api/features/{seeded.feature_ids[1]}/accept", json={"label_id": seeded.label_ids["animal nouns"]})
    assert wrong_label.status_code == 404 and "not a label of feature" in wrong_label.json()["detail"]


def test_accept_supersedes_the_others_and_resolves(api, seeded, db_session):
    fid, chosen = seeded.feature_ids[0], seeded.label_ids["cats sitting on mats"]
    outcome = api.post(f"/api/features/{fid}/accept", json={"label_id": chosen, "note": "fits"}).json()
    assert outcome == {"event_id": outcome["event_id"], "feature_id": fid, "action": "accept",
                       "current_label_id": chosen, "dispute_status": "resolved"}
    assert db_session.get(Feature, fid).current_label_id == chosen
    assert db_session.get(Label, seeded.label_ids["animal nouns"]).status == "superseded"
    assert db_session.get(Label, chosen).status == "accepted"
    event = db_session.get(ReviewEvent, outcome["event_id"])
    assert (event.user_name, event.note, event.before["labels"][str(chosen)]) == ("rita", "fits", "candidate")

    # accepting the other one later moves the current label and supersedes the first
    other = seeded.label_ids["animal nouns"]
    api.post(f"/api/features/{fid}/accept", json={"label_id": other})
    db_session.expire_all()
    assert db_session.get(Feature, fid).current_label_id == other
    assert db_session.get(Label, chosen).status == "superseded"


def test_reject_all_flags_and_keeps_the_dispute_open(api, seeded, db_session):
    fid = seeded.feature_ids[1]
    api.post(f"/api/features/{fid}/accept", json={"label_id": seeded.label_ids["end of sentence"]})
    outcome = api.post(f"/api/features/{fid}/reject", json={"note": "it fires on commas too"}).json()
    assert outcome["current_label_id"] is None and outcome["dispute_status"] == "open"
    db_session.expire_all()
    assert db_session.get(Label, seeded.label_ids["end of sentence"]).status == "rejected"
    dispute = db_session.scalar(select(Dispute).where(Dispute.feature_id == fid))
    assert (dispute.status, dispute.resolution, dispute.resolved_by) == ("open", None, None)
    reasons = dict(db_session.execute(select(DisputeReason.reason, DisputeReason.details).where(DisputeReason.dispute_id == dispute.id)).all())
    assert (reasons["human_flag"]["note"], reasons["human_flag"]["user_name"]) == ("it fires on commas too", "rita")
    assert reasons["human_flag"]["user_id"] == db_session.scalar(select(User.id).where(User.name == "rita"))
    assert api.get("/api/review/queue").json()["reason_counts"]["human_flag"] == 1


def test_edit_note_and_validation(api, seeded, db_session):
    fid = seeded.feature_ids[0]
    edited = api.post(f"/api/features/{fid}/edit", json={"text": "  felines   on mats "}).json()
    label = db_session.get(Label, edited["current_label_id"])
    assert (label.text, label.source, label.status) == ("felines on mats", "human", "accepted")
    again = api.post(f"/api/features/{fid}/edit", json={"text": "felines on mats"}).json()
    assert again["current_label_id"] == label.id, "the same human text is the same label row"

    noted = api.post(f"/api/features/{fid}/notes", json={"note": "check the quantile-0 examples"}).json()
    assert noted["action"] == "note" and noted["current_label_id"] == label.id
    blank = api.post(f"/api/features/{fid}/edit", json={"text": "   "})
    assert blank.status_code == 422 and blank.json()["error"] == "ConfigError"
    assert api.post(f"/api/features/{fid}/notes", json={"note": ""}).status_code == 422
    assert api.post(f"/api/features/{fid}/edit", json={"text": "x" * 501}).status_code == 422
    history = api.get(f"/api/features/{fid}").json()["events"]
    assert [e["action"] for e in history] == ["note", "edit", "edit"]


def test_label_search(api, seeded):
    hits = api.get("/api/labels", params={"q": "MATS"}).json()
    assert [h["text"] for h in hits] == ["cats sitting on mats"]
    assert hits[0]["scores"] == {"detection": 0.55, "embedding": 0.61}
    assert api.get("/api/labels", params={"q": "100%_"}).json() == []  # LIKE wildcards are literal
    assert len(api.get("/api/labels", params={"status": "candidate"}).json()) == 3
    assert api.get("/api/labels", params={"status": "nonsense"}).status_code == 422


def test_job_status_and_cancel(client, seeded, db_session):
    job_id = add_job(db_session, seeded, submission_id="s-1")
    store_jobs.set_progress(db_session, job_id=job_id, stage="caching", done=1, total=2)
    db_session.commit()
    reviewer = {"Authorization": f"Bearer {seeded.reviewer_token}"}
    status = client.get(f"/api/jobs/{job_id}", headers=reviewer).json()
    assert status["status"] == "queued" and status["progress"]["caching"] == {"done": 1, "total": 2}
    assert [j["id"] for j in client.get("/api/jobs", headers=reviewer).json()] == [job_id]
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=reviewer).status_code == 403
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=admin).json()["status"] == "cancelled"


def test_jobs_page_shows_progress_and_cost(client, seeded, db_session):
    job_id = add_job(db_session, seeded, submission_id="s-2")
    store_jobs.set_progress(db_session, job_id=job_id, stage="explaining", done=3, total=4)
    store_jobs.store_job_cost(db_session, job_id=job_id, prompt_tokens=1000, completion_tokens=50, cost_usd=0.0123)
    db_session.commit()
    csrf = sign_in(client, *ADMIN)
    page = client.get("/jobs").text
    assert '<progress value="3" max="4">' in page and "$0.0123" in page and "1,050" in page
    assert client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf}, follow_redirects=True).status_code == 200
    assert store_jobs.get_job(db_session, job_id).status == "cancelled"


def test_submit_with_a_missing_sae_folder_is_422(client, seeded, tmp_path):
    admin = {"Authorization": f"Bearer {seeded.admin_token}"}
    bad_shape = client.post("/api/jobs", headers=admin, json={"model": "minilm"})
    assert bad_shape.status_code == 422  # no SAE at all: refused by the schema
    missing = client.post("/api/jobs", headers=admin, json={"sae_path": str(tmp_path / "nope"), "model": "minilm"})
    assert missing.status_code == 422, missing.text
    assert missing.json()["error"] == "SAENotFoundError"


def test_text_sql_cannot_store_is_refused_at_the_door(api, seeded):
    fid = seeded.feature_ids[0]
    for response in (
        api.post(f"/api/features/{fid}/edit", json={"text": "a\x00b"}),
        api.post(f"/api/features/{fid}/notes", content=b'{"note": "\\ud800"}', headers={"Content-Type": "application/json"}),
        api.get("/api/labels", params={"q": "a\x00"}),
        api.post(f"/api/features/{fid}/notes", content=b'{"note": "x", "\\udc00": 1}', headers={"Content-Type": "application/json"}),
        api.get(f"/api/features/{2**31}"),
        api.get("/api/review/queue", params={"sae_id": 2**40}),
    ):
        assert response.status_code == 422, response.text
