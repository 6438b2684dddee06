"""The review UI in a real browser (Debian Chromium, headless) against a real uvicorn server on loopback.

A reviewer signs in, opens the queue, opens the top disputed feature, writes their own label and accepts
it; the SQL rows must then say exactly that. A second test fills the data with markup and checks that the
browser shows it as text and runs none of it.
"""

from __future__ import annotations

import shutil

from playwright.sync_api import Page, expect
from sqlalchemy import select

from web_helpers import ARTIFACTS, DOCS
from labeler.store.models import Dispute, Feature, Label, ReviewEvent
from web_seed import ADMIN, IMG, REVIEWER, SCRIPT


def sign_in(page: Page, base: str, name: str, password: str, target: str = "/queue") -> None:
    page.goto(base + target)
    assert "/login" in page.url, "an anonymous visitor must land on the login page"
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base}{target}*")


def test_review_flow_edit_and_accept(page: Page, live_server: str, seeded, db_session):
    sign_in(page, live_server, *REVIEWER)

    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("cats sitting on mats")  # priority 0.9 before 0.4
    expect(page.locator(".chips")).to_contain_text("low_score 2")
    expect(page.locator(".chips")).to_contain_text("candidates_disagree 1")

    page.select_option("select[name=reason]", "candidates_disagree")  # app.js submits the filter
    page.wait_for_url("**reason=candidates_disagree*")
    expect(rows).to_have_count(1)

    feature_id = seeded.feature_ids[0]
    rows.first.locator("a.feature-link").click()
    page.wait_for_url(f"{live_server}/features/{feature_id}")

    # examples on full contexts: grouped, coloured, the exact value on hover, grey outside the window
    expect(page.locator("#group-top")).to_be_visible()
    expect(page.locator("#group-negative")).to_be_visible()
    assert page.locator("h3[id^=group-quantile]").count() == 2
    first_example = page.locator("#examples li.example").first.locator(".tok")
    assert first_example.count() == 16, "the whole 16-token sequence is shown, not only the window"
    peak = page.locator("#examples .tok.max").first
    expect(peak).to_have_attribute("title", "5.100")
    expect(peak).to_have_class("tok lv10 max")
    expect(first_example.first).to_have_class("tok lv0 out")
    # the pictures, every score and its details, the dispute reasons
    assert page.locator("svg.histogram rect.bar").count() == 5
    expect(page.locator("#stats")).to_contain_text("fires on 12.500% of tokens")
    expect(page.locator("#candidates table.scores")).to_have_count(2)
    expect(page.locator("#candidates")).to_contain_text("skipped")
    expect(page.locator("#dispute")).to_contain_text("candidates_disagree")

    page.screenshot(path=str(DOCS / "feature_page.png"), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DOCS / "feature_page.png", ARTIFACTS / "feature_page.png")

    # "Edit from this" copies the second candidate into the edit box; the reviewer rewrites and accepts
    page.locator("article.label").nth(1).get_by_role("button", name="Edit from this").click()
    expect(page.locator("#edit-text")).to_have_value("animal nouns")
    page.fill("#edit-text", "cats and dogs doing things")
    page.fill("#edit-form input[name=note]", "both candidates too narrow")
    page.click("#edit-form button[type=submit]")
    page.wait_for_url(f"{live_server}/features/{feature_id}")
    expect(page.locator(".flash")).to_contain_text("accepted")
    expect(page.locator("#current-label")).to_contain_text("cats and dogs doing things")
    expect(page.locator("#history")).to_contain_text("rita edit")

    db_session.expire_all()
    feature = db_session.get(Feature, feature_id)
    accepted = db_session.get(Label, feature.current_label_id)
    assert (accepted.text, accepted.source, accepted.status) == ("cats and dogs doing things", "human", "accepted")
    statuses = dict(db_session.execute(select(Label.text, Label.status).where(Label.feature_id == feature_id)).all())
    assert statuses == {
        "cats sitting on mats": "superseded",
        "animal nouns": "superseded",
        "cats and dogs doing things": "accepted",
    }
    dispute = db_session.scalar(select(Dispute).where(Dispute.feature_id == feature_id))
    assert (dispute.status, dispute.resolution) == ("resolved", "reviewer")
    (event,) = db_session.scalars(select(ReviewEvent).where(ReviewEvent.feature_id == feature_id)).all()
    assert (event.action, event.user_name, event.note) == ("edit", "rita", "both candidates too narrow")
    assert event.before["current_label_id"] is None and event.before["dispute"] == "open"
    assert event.after["current_label_id"] == accepted.id and event.after["dispute"] == "resolved"
    assert event.created_at is not None

    # the queue no longer lists it
    page.goto(live_server + "/queue")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("end of sentence")


def test_markup_in_data_renders_inert(page: Page, live_server: str, hostile_seeded):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_server, *ADMIN)
    expect(page.locator("table.queue")).to_contain_text(SCRIPT)

    page.goto(f"{live_server}/features/{hostile_seeded.feature_ids[0]}")
    tokens = page.locator("#examples .tok").all_text_contents()
    assert f" {SCRIPT}" in tokens and f" {IMG}" in tokens, "markup tokens are shown as text"
    expect(page.locator("#candidates .label-text").first).to_contain_text(f"cats sitting on mats {SCRIPT} {IMG}")
    expect(page.locator("h1")).to_contain_text(SCRIPT)
    low_score = page.locator("#dispute li", has_text="low_score")
    low_score.locator("summary").click()
    expect(low_score.locator("pre")).to_contain_text(IMG)
    page.goto(f"{live_server}/labels?q=script")
    expect(page.locator("table.grid")).to_contain_text(SCRIPT)

    assert page.locator("img").count() == 0, "no <img> element came out of the data"
    assert page.locator("script:not([src])").count() == 0, "no inline script came out of the data"
    page.wait_for_timeout(200)  # let any injected onerror fire before asserting none did
    assert dialogs == []
