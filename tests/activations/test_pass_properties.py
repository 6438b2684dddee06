"""One pass over random sparse activations equals brute force; shards merge into exactly the one-pass result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeler.activations import ShardSummary, merge_summaries, summarize_activations
from labeler.activations.accumulator import negative_pool_size
from labeler.activations.keys import pack_order, reservoir_keys, unpack_order
from labeler.config import ActivationConfig
from activation_reference import canonical, kept, reference

SPECIAL = (0, 1, 2)  # pad, CLS, SEP


@st.composite
def batches(draw):
    """Random sparse activations with special tokens, ties and the edge positions all represented."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_seq, seq_len, n_feat = draw(st.integers(1, 7)), draw(st.integers(2, 12)), draw(st.integers(1, 6))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.9]))
    tied = draw(st.booleans())  # values from a tiny set: many exact ties
    values = rng.choice([0.5, 1.0, 2.0], size=(n_seq, seq_len, n_feat)) if tied else rng.exponential(size=(n_seq, seq_len, n_feat))
    acts = np.where(rng.random((n_seq, seq_len, n_feat)) < density, values, 0.0).astype(np.float32)
    tokens = rng.integers(3, 50, size=(n_seq, seq_len))
    tokens[:, 0] = 1  # CLS first, like the datasets
    tokens[rng.random((n_seq, seq_len)) < 0.1] = rng.choice(SPECIAL)
    acts[tokens == 1] += 5.0  # the CLS spike every dashboard has to skip
    config = ActivationConfig(
        batch_size=draw(st.integers(1, 4)),
        top_k=draw(st.integers(1, 4)),
        top_distinct_sequences=draw(st.booleans()),
        reservoir_size=draw(st.integers(0, 5)),
        n_negatives=draw(st.integers(0, 2)),
        window_before=draw(st.integers(0, 4)),
        window_after=draw(st.integers(0, 3)),
        seed=draw(st.integers(0, 3)),
    )
    return acts, tokens, config, draw(st.integers(0, 10_000))


def summarize(acts, tokens, config, seq_offset) -> ShardSummary:
    return summarize_activations(torch.from_numpy(acts), torch.from_numpy(tokens), special_token_ids=SPECIAL, seq_offset=seq_offset, config=config)


def reference_of(acts, tokens, config, seq_offset):
    return reference(
        acts, tokens, SPECIAL, seq_offset=seq_offset, top_k=config.top_k, reservoir_size=config.reservoir_size,
        pool_size=negative_pool_size(config), window_before=config.window_before, window_after=config.window_after, seed=config.seed,
        top_distinct_sequences=config.top_distinct_sequences,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_one_pass_equals_brute_force(case):
    acts, tokens, config, seq_offset = case
    summary = summarize(acts, tokens, config, seq_offset)
    ref = reference_of(acts, tokens, config, seq_offset)

    assert summary.n_tokens == ref.n_tokens
    np.testing.assert_array_equal(summary.n_firing, ref.n_firing)
    np.testing.assert_allclose(summary.sum_activation, ref.sum_activation, rtol=1e-6)
    np.testing.assert_array_equal(summary.max_activation, ref.max_activation)
    np.testing.assert_array_equal(summary.histogram, ref.histogram)
    for f in range(acts.shape[2]):
        # exact top-k with the documented tie-break (value desc, seq, position); special tokens never rank
        got = [(float(summary.top.value[f, i]), *map(int, unpack_order(summary.top.order[f, i]))) for i in range(config.top_k) if summary.top.valid[f, i]]
        assert sorted(got, key=lambda e: (-e[0], e[1], e[2])) == ref.top[f]
        for value, seq, pos in ref.top[f]:
            slot = int(np.flatnonzero(summary.top.order[f] == (seq << 16 | pos))[0])
            expected = ref.window(seq, pos, f)
            restored = summary.top.window[f, slot] * (summary.top.window_max[f, slot] / 255.0)
            np.testing.assert_allclose(restored, expected, atol=float(expected.max()) / 510 + 1e-6)
        assert kept(summary.reservoir, f) == ref.reservoir[f]
    assert kept(summary.pool, 0) == ref.pool
    for slot in np.flatnonzero(summary.pool.valid[0]):
        seq, pos = map(int, unpack_order(summary.pool.order[0, slot]))
        start = ref.window_start(pos)
        fires = (ref.acts[seq - seq_offset, start : start + ref.window_len] > 0).any(axis=0)
        np.testing.assert_array_equal(summary.pool.window[0, slot].astype(bool), fires)
    # every referenced sequence is there, with its tokens
    for slots in (summary.top, summary.reservoir, summary.pool):
        for seq in np.unique(unpack_order(slots.order[slots.valid])[0]):
            np.testing.assert_array_equal(summary.sequences[int(seq)], tokens[int(seq) - seq_offset])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_shards_merge_into_the_one_pass_result(case, data):
    acts, tokens, config, seq_offset = case
    n_seq = acts.shape[0]
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, n_seq - 1)), max_size=3, unique=True))) if n_seq > 1 else []
    bounds = [0, *cuts, n_seq]
    shards = [summarize(acts[a:b], tokens[a:b], config, seq_offset + a) for a, b in zip(bounds, bounds[1:])]
    shards = data.draw(st.permutations(shards))  # merge order must not matter
    through_bytes = [ShardSummary.from_bytes(s.to_bytes()) for s in shards]
    merged = merge_summaries(through_bytes)
    whole = summarize(acts, tokens, config, seq_offset)

    assert (merged.n_tokens, merged.n_sequences) == (whole.n_tokens, whole.n_sequences)
    np.testing.assert_array_equal(merged.n_firing, whole.n_firing)
    np.testing.assert_array_equal(merged.histogram, whole.histogram)
    np.testing.assert_array_equal(merged.max_activation, whole.max_activation)
    np.testing.assert_allclose(merged.sum_activation, whole.sum_activation, rtol=1e-9)
    for name in ("top", "reservoir", "pool"):
        assert canonical(getattr(merged, name)) == canonical(getattr(whole, name)), name
    assert merged.sequences.keys() == whole.sequences.keys()


def test_bytes_round_trip_is_lossless_and_compact():
    rng = np.random.default_rng(0)
    acts = np.where(rng.random((40, 32, 64)) < 0.02, rng.exponential(size=(40, 32, 64)), 0).astype(np.float32)
    tokens = rng.integers(3, 50, size=(40, 32))
    tokens[:, 0] = 1
    summary = summarize(acts, tokens, ActivationConfig(batch_size=8, reservoir_size=30, window_before=6, window_after=4), 7)
    blob = summary.to_bytes()
    back = ShardSummary.from_bytes(blob)
    for name in ("top", "reservoir", "pool"):
        assert canonical(getattr(back, name)) == canonical(getattr(summary, name))
        np.testing.assert_array_equal(getattr(back, name).key, getattr(summary, name).key)
    np.testing.assert_array_equal(back.histogram, summary.histogram)
    assert back.sequences.keys() == summary.sequences.keys()
    raw = sum(a.nbytes for s in (summary.top, summary.reservoir, summary.pool) for a in (s.key, s.order, s.value, s.window, s.window_max))
    assert len(blob) < raw / 2  # keys are rebuilt, not stored; mostly-zero windows compress


def test_reservoir_keys_sample_uniformly_and_independently_per_feature():
    """The pass keeps exactly the R smallest keys (test above); here: those are a uniform sample.

    60 firing positions, R = 12, 2000 seeds: each position is kept ~400 times. Deterministic (fixed
    seeds), so the bounds are properties of the hash, not luck: chi-square with 59 degrees of freedom
    stays under its 99.9th percentile (~98.3), and two features' samples overlap like independent draws
    (R*R/60 = 2.4 shared positions on average), not like one shared sample (12).
    """
    orders = pack_order(np.repeat(np.arange(6), 10), np.tile(np.arange(1, 11), 6))
    n_seeds, size = 2000, 12
    counts = np.zeros(orders.size, dtype=np.int64)
    overlap = 0
    for seed in range(n_seeds):
        keys = reservoir_keys(np.broadcast_to(orders, (2, orders.size)), seed)
        first, second = np.argsort(keys[0])[:size], np.argsort(keys[1])[:size]
        counts[first] += 1
        overlap += np.intersect1d(first, second).size
    expected = n_seeds * size / orders.size
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 98.3, chi_square
    assert 2.0 < overlap / n_seeds < 2.9


def test_signed_activations_only_fire_when_positive():
    acts = np.array([[[0.0], [-3.0], [2.0], [-1.0]]], dtype=np.float32)
    tokens = np.array([[1, 5, 6, 7]])
    summary = summarize(acts, tokens, ActivationConfig(top_k=3, reservoir_size=3, window_before=1, window_after=1), 0)
    assert summary.n_firing.tolist() == [1]
    assert summary.top.valid[0].sum() == 1
    slot = int(np.flatnonzero(summary.top.valid[0])[0])
    assert summary.top.window[0, slot].tolist() == [0, 255, 0]  # negatives around it show as 0


@pytest.mark.parametrize("batch_size", [1, 2])
def test_top_examples_come_from_distinct_sequences_unless_asked_otherwise(batch_size):
    # one feature firing on a run of tokens in sequence 0 and once, more weakly, in sequence 1
    acts = np.zeros((2, 8, 1), dtype=np.float32)
    acts[0, 2:6, 0] = [3.0, 5.0, 5.0, 4.0]
    acts[1, 6, 0] = 1.0
    tokens = np.full((2, 8), 9)
    config = ActivationConfig(top_k=3, reservoir_size=0, n_negatives=0, window_before=2, window_after=1, batch_size=batch_size)

    def top(summary):
        valid = summary.top.valid[0]
        return sorted((float(v), *map(int, unpack_order(o))) for v, o in zip(summary.top.value[0][valid], summary.top.order[0][valid]))

    # the passage around positions 2-5 shows once, at its first maximum; the other sequence still gets its slot
    assert top(summarize(acts, tokens, config, 40)) == [(1.0, 41, 6), (5.0, 40, 3)]
    every_position = config.model_copy(update={"top_distinct_sequences": False})
    assert top(summarize(acts, tokens, every_position, 40)) == [(4.0, 40, 5), (5.0, 40, 3), (5.0, 40, 4)]
