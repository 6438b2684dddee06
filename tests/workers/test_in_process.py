"""The embedded default: no broker, SQLite, every stage in-process through the same task code."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import select

from labeler import jobs
from labeler.config import ActivationConfig, JobConfig, LabelConfig
from labeler.demo import DEMO_HOOK, DEMO_MODEL, DEMO_SAE_PATH
from labeler.store.db import session_scope
from labeler.store.models import Feature, Job, Label


@pytest.mark.parametrize("second_hook", [DEMO_HOOK, "blocks.1.hook_resid_post"])
def test_two_saes_in_one_submission_share_a_pass_and_both_finish(tmp_path, monkeypatch, second_hook):
    from sae_lens import StandardSAE, StandardSAEConfig

    import labeler.activations as activations
    from labeler.sources.model import LoadedModel

    cfg = StandardSAEConfig(d_in=384, d_sae=32)
    cfg.metadata.hook_name = second_hook
    torch.manual_seed(0)
    StandardSAE(cfg).save_model(str(tmp_path / "second_sae"))

    forward_calls: list[int] = []
    real_cache_shard = activations.cache_shard

    def counting_cache_shard(model, saes, *args, **kwargs):
        forward_calls.append(len(saes))
        passes.append([])
        return real_cache_shard(model, saes, *args, **kwargs)

    monkeypatch.setattr(activations, "cache_shard", counting_cache_shard)
    passes: list[list[tuple[str, ...]]] = []  # per shard: the hooks of each forward pass
    real_forward = LoadedModel.forward_to_hooks

    def counting_forward(self, tokens, hook_names):
        if passes:
            passes[-1].append(tuple(sorted(hook_names)))
        return real_forward(self, tokens, hook_names)

    monkeypatch.setattr(LoadedModel, "forward_to_hooks", counting_forward)
    request = jobs.SubmitRequest(
        sae_path=[str(DEMO_SAE_PATH), str(tmp_path / "second_sae")],
        model=DEMO_MODEL,
        config=JobConfig(
            activation=ActivationConfig(n_tokens=2048, n_shards=2),
            label=LabelConfig(explainer="offline", scorers=("embedding",)),
            feature_indices=(0, 1, 2, 3),
        ),
    )
    submission = jobs.submit(request)

    assert len(submission.job_ids) == 2
    assert forward_calls == [2, 2], "each shard ran one pass for both SAEs"
    both = tuple(sorted({DEMO_HOOK, second_hook}))
    assert all(shard and set(shard) == {both} for shard in passes), f"every batch one pass for all hooks: {passes}"
    with session_scope() as session:
        for job_id in submission.job_ids:
            job = session.get(Job, job_id)
            assert job.status == "done", job.error
            features = session.scalars(select(Feature).where(Feature.job_id == job_id)).all()
            assert sorted(f.feature_index for f in features) == [0, 1, 2, 3]
            for f in features:
                if f.is_dead:
                    continue
                sources = set(session.scalars(select(Label.source).where(Label.feature_id == f.id)))
                assert sources <= {"offline"} and (sources or f.label_state == "failed")
