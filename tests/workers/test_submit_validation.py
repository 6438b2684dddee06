"""Bad submissions are refused before anything is written or queued, each with its own message."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from labeler import jobs
from labeler.config import ActivationConfig, JobConfig
from labeler.demo import DEMO_MODEL, DEMO_SAE_PATH
from labeler.errors import ConfigError, DatasetError, DimensionMismatchError, HookNotFoundError, SAENotFoundError
from labeler.store.db import session_scope
from labeler.store.models import Dataset, Job, SAE


@pytest.fixture
def wrong_width_sae(tmp_path):
    from sae_lens import StandardSAE, StandardSAEConfig

    folder = tmp_path / "wide_sae"
    cfg = StandardSAEConfig(d_in=512, d_sae=64)
    cfg.metadata.hook_name = "blocks.3.hook_resid_post"
    StandardSAE(cfg).save_model(str(folder))
    return folder


def request(**overrides) -> jobs.SubmitRequest:
    fields = dict(sae_path=[str(DEMO_SAE_PATH)], model=DEMO_MODEL, dataset="builtin",
                  config=JobConfig(activation=ActivationConfig(n_tokens=1024, n_shards=1)))
    fields.update(overrides)
    return jobs.SubmitRequest(**fields)


def assert_nothing_written_or_queued(redis_server) -> None:
    with session_scope() as session:
        for table in (Job, SAE, Dataset):
            assert session.scalar(select(func.count()).select_from(table)) == 0
    client = redis_server.client()
    assert client.llen("gpu") == 0 and client.llen("llm") == 0


def test_missing_sae_folder(service_env, redis_server, tmp_path):
    with pytest.raises(SAENotFoundError, match="does not exist"):
        jobs.submit(request(sae_path=[str(tmp_path / "nope")]))
    assert_nothing_written_or_queued(redis_server)


def test_hook_not_in_model(service_env, redis_server):
    with pytest.raises(HookNotFoundError, match="blocks.9.hook_resid_post"):
        jobs.submit(request(hook="blocks.9.hook_resid_post"))
    assert_nothing_written_or_queued(redis_server)


def test_sae_width_differs_from_model(service_env, redis_server, wrong_width_sae):
    with pytest.raises(DimensionMismatchError, match="512"):
        jobs.submit(request(sae_path=[str(wrong_width_sae)]))
    assert_nothing_written_or_queued(redis_server)


def test_empty_dataset(service_env, redis_server, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n\n")
    with pytest.raises(DatasetError, match="empty"):
        jobs.submit(request(dataset=str(empty)))
    assert_nothing_written_or_queued(redis_server)


def test_feature_index_out_of_range(service_env, redis_server):
    with pytest.raises(ConfigError, match="out of range"):
        jobs.submit(request(config=JobConfig(feature_indices=(10**7,))))
    assert_nothing_written_or_queued(redis_server)


def test_request_needs_an_sae():
    with pytest.raises(ValueError, match="at least one SAE"):
        jobs.SubmitRequest(model=DEMO_MODEL)
