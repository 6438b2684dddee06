"""Try it: per-token activations of one feature on typed text, through the API and the page, real MiniLM + small SAE."""

from __future__ import annotations

import re

import pytest
import torch

from labeler.store.features import upsert_features
from labeler.store.sources import upsert_sae
from labeler.types import FeatureStats
from web_helpers import sign_in
from web_seed import REVIEWER

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def real_sae_feature(tmp_path, db_session) -> int:
    """A small random SAE on MiniLM's layer 1, stored like a submitted one; returns a feature id."""
    from sae_lens import StandardSAE, StandardSAEConfig

    folder = tmp_path / "sae"
    torch.manual_seed(0)
    cfg = StandardSAEConfig(d_in=384, d_sae=8)
    cfg.metadata.hook_name = HOOK
    StandardSAE(cfg).save_model(str(folder))
    sae_id = upsert_sae(
        db_session, name="random-minilm-sae", source="local", release=None, sae_id=None, path=str(folder),
        model_name="minilm", hook_name=HOOK, d_in=384, d_sae=8, architecture="standard", checksum="f" * 64,
    )
    ids = upsert_features(db_session, sae_id=sae_id, stats=[FeatureStats(3, 100, 10, 2.0, 5.0, (0.0, 2.0), (10,))])
    db_session.commit()
    return ids[3]


def test_try_it_shows_this_features_activation_on_typed_text(client, seeded, real_sae_feature):
    text = "The cat sat on the mat."
    auth = {"Authorization": f"Bearer {seeded.reviewer_token}"}
    tokens = client.post(f"/api/features/{real_sae_feature}/try", headers=auth, json={"text": text}).json()["tokens"]
    texts = [t["text"].strip() for t in tokens]
    assert texts[0] == "[CLS]" and "cat" in texts and "mat" in texts
    assert all(t["activation"] is not None and t["activation"] >= 0 for t in tokens)
    assert tokens[0]["activation"] == 0.0, "special tokens read 0, as in stored examples"

    csrf = sign_in(client, *REVIEWER)
    page = client.post(f"/features/{real_sae_feature}/try", data={"text": text, "csrf_token": csrf}).text
    tried = page[page.index('<div class="tried">'):]
    shown = re.findall(r'title="([^"]+)">([^<]*)</span>', tried)
    assert [t.strip() for _, t in shown] == texts
    assert [float(v) for v, _ in shown] == pytest.approx([t["activation"] for t in tokens], abs=5e-4)
    assert "The cat sat on the mat." in page, "the typed text stays in the box"
