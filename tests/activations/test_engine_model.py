"""The pass on the demo model and SAE, persisted to SQLite, against sae_lens + transformer_lens directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from labeler.activations import cache_shard, feature_activations_on_tokens, merge_summaries, persist_features, select_examples
from labeler.config import ActivationConfig
from labeler.demo import DEMO_HOOK, DEMO_MODEL, DEMO_SAE_PATH
from labeler.sources import load_dataset, load_model, load_sae
from labeler.store.db import make_engine, upgrade
from labeler.store.features import load_feature_examples
from labeler.store.models import Example, Feature
from labeler.store.sources import load_sequence, upsert_dataset, upsert_sae

SECOND_HOOK = "blocks.1.hook_resid_post"
CONFIG = ActivationConfig(batch_size=16, top_k=5, reservoir_size=30, n_quantiles=3, per_quantile=2, n_negatives=3, window_before=6, window_after=3)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The demo model, the demo SAE, a second (random TopK) SAE at an earlier hook, ~3k builtin tokens."""
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    model = load_model(DEMO_MODEL, device="cpu")
    folder = tmp_path_factory.mktemp("sae2")
    random_sae = TopKSAE(TopKSAEConfig(d_in=384, d_sae=256, k=8))
    random_sae.cfg.metadata.hook_name = SECOND_HOOK
    random_sae.save_model(str(folder))
    saes = [load_sae(path=str(DEMO_SAE_PATH), device="cpu"), load_sae(path=str(folder), device="cpu")]
    dataset = load_dataset("builtin", model, context_size=64, n_tokens=64 * 48)
    return model, saes, dataset


@pytest.fixture(scope="module")
def merged(sources):
    """Two shards, both SAEs in each pass, merged per SAE; progress recorded."""
    model, saes, dataset = sources
    progress: list[list[tuple[int, int]]] = []
    per_shard = []
    for index in range(2):
        start, stop = dataset.shard(index, 2)
        calls: list[tuple[int, int]] = []
        per_shard.append(cache_shard(model, saes, dataset.tokens[start:stop], seq_offset=start, config=CONFIG, progress=lambda d, t: calls.append((d, t))))
        progress.append(calls)
    return [merge_summaries([shard[i] for shard in per_shard]) for i in range(len(saes))], progress


def recompute(model, sae, token_ids: np.ndarray) -> torch.Tensor:
    """Straight sae_lens + transformer_lens: run_with_cache to the hook, encode; specials zeroed. [seq, d_sae]"""
    layer = int(sae.hook_name.split(".")[1])
    tokens = torch.as_tensor(token_ids, dtype=torch.long)[None]
    with torch.no_grad():
        _, cache = model.model.run_with_cache(tokens, names_filter=[sae.hook_name], stop_at_layer=layer + 1)
        acts = sae.sae.encode(cache[sae.hook_name])[0]
    special = torch.isin(tokens[0], torch.tensor(sorted(model.special_token_ids())))
    return acts.masked_fill(special[:, None], 0.0)


def test_every_token_is_counted_and_progress_reaches_the_end(sources, merged):
    _, saes, dataset = sources
    summaries, progress = merged
    special = torch.isin(dataset.tokens, torch.tensor(sorted(sources[0].special_token_ids())))
    for summary, sae in zip(summaries, saes):
        assert summary.d_sae == sae.d_sae and summary.n_sequences == dataset.n_sequences
        assert summary.n_tokens == int((~special).sum())
    for index, calls in enumerate(progress):
        start, stop = dataset.shard(index, 2)
        total = (stop - start) * dataset.context_size
        done = [d for d, _ in calls]
        assert done == sorted(done) and done[-1] == total and {t for _, t in calls} == {total}
        assert len(calls) == -(-(stop - start) // CONFIG.batch_size)  # one per batch, the partial last one included


def test_demo_sae_top_examples_persist_and_match_direct_recomputation(sources, merged, sqlite_url):
    model, saes, dataset = sources
    summaries, _ = merged
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    Session = sessionmaker(bind=engine, expire_on_commit=False)
    checked = 0
    for sae, summary, n_features in zip(saes, summaries, (20, 5)):
        drafts = select_examples(summary, CONFIG)
        live = [d.feature_index for d in drafts if not d.stats.is_dead]
        chosen = sorted(np.random.default_rng(0).choice(live, size=min(n_features, len(live)), replace=False).tolist())
        dead = [d.feature_index for d in drafts if d.stats.is_dead][:2]
        subset = [drafts[i] for i in chosen + dead]
        with Session() as session:
            sae_id = upsert_sae(session, **sae.store_fields(model.name))
            dataset_id = upsert_dataset(session, **dataset.store_fields())
            persist_features(session, sae_id=sae_id, dataset_id=dataset_id, job_id=None, drafts=subset, sequences=summary.sequences)
            session.commit()
            before = table_rows(session, sae_id)
            persist_features(session, sae_id=sae_id, dataset_id=dataset_id, job_id=None, drafts=subset, sequences=summary.sequences)
            session.commit()
            assert table_rows(session, sae_id) == before  # idempotent
            recomputed: dict[int, np.ndarray] = {}
            stored = {fe.feature_index: fe for fe in load_feature_examples(session, sae_id=sae_id, feature_indices=chosen + dead)}
            for f in dead:
                assert stored[f].stats.is_dead and stored[f].examples == ()
            for f in chosen:
                top = stored[f].of_kind("top")[0]
                if top.seq_index not in recomputed:
                    sequence = load_sequence(session, dataset_id=dataset_id, seq_index=top.seq_index)
                    recomputed[top.seq_index] = recompute(model, sae, sequence).numpy()
                direct = recomputed[top.seq_index][:, f]
                window = direct[top.window_start : top.window_start + len(top.token_ids)]
                assert abs(float(top.activations().max()) - float(window.max())) <= top.scale + 1e-4
                assert top.max_activation == pytest.approx(float(direct[top.max_position]), rel=1e-4, abs=1e-5)
                assert stored[f].stats.max_activation == pytest.approx(float(direct.max()), rel=1e-4, abs=1e-5)
                np.testing.assert_allclose(top.activations(), window, atol=top.scale + 1e-4)
                assert len(stored[f].examples) == len(drafts[f].examples)
                checked += 1
    assert checked == 25


def test_feature_activations_on_tokens_matches_direct_recomputation(sources):
    model, saes, dataset = sources
    sequence = dataset.tokens[3].numpy()
    for sae in saes:
        ours = feature_activations_on_tokens(model, sae, sequence)
        torch.testing.assert_close(ours, recompute(model, sae, sequence), rtol=1e-4, atol=1e-5)
        assert ours.shape == (len(sequence), sae.d_sae) and not ours[0].any()  # CLS reads 0


def table_rows(session, sae_id: int) -> tuple[list, list]:
    features = session.execute(
        select(Feature.feature_index, Feature.n_tokens, Feature.n_firing, Feature.max_activation, Feature.mean_activation, Feature.histogram, Feature.is_dead, Feature.is_rare)
        .where(Feature.sae_id == sae_id).order_by(Feature.feature_index)
    ).all()
    examples = session.execute(
        select(Feature.feature_index, Example.kind, Example.quantile, Example.rank, Example.seq_index, Example.window_start, Example.token_ids, Example.activations, Example.scale, Example.max_position, Example.max_activation)
        .join(Feature, Feature.id == Example.feature_id).where(Feature.sae_id == sae_id)
        .order_by(Feature.feature_index, Example.kind, Example.quantile, Example.rank)
    ).all()
    return [tuple(r) for r in features], [tuple(r) for r in examples]
