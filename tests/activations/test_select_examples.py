"""select_examples: every window is what brute force says it is, per kind, deterministically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activation_reference import reference
from labeler.activations import select_examples, summarize_activations
from labeler.activations.accumulator import BatchWindows, negative_pool_size
from labeler.config import ActivationConfig

SPECIAL = (0, 1, 2)


def random_case(seed: int, n_seq=24, seq_len=20, n_feat=12):
    rng = np.random.default_rng(seed)
    density = np.array([0.0, 0.002, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.05, 0.1, 0.9, 0.01])[:n_feat]
    acts = np.where(rng.random((n_seq, seq_len, n_feat)) < density, rng.exponential(size=(n_seq, seq_len, n_feat)), 0).astype(np.float32)
    acts[:, :, :2] = 0.0  # feature 0 is dead
    acts[0, 1, 1] = 3.0  # feature 1 fires exactly once, right after CLS
    tokens = rng.integers(3, 90, size=(n_seq, seq_len))
    tokens[:, 0] = 1
    tokens[-1, -3:] = 0  # padding at the very end
    acts[:, 0, :] += 7.0  # CLS spikes in every feature, dead ones included: must not count
    return acts, tokens


CONFIG = ActivationConfig(batch_size=5, top_k=4, reservoir_size=24, n_quantiles=3, per_quantile=2, n_negatives=3, window_before=3, window_after=2, rare_below=5, histogram_bins=6)


@pytest.fixture(scope="module")
def case():
    acts, tokens = random_case(11)
    summary = summarize_activations(torch.from_numpy(acts), torch.from_numpy(tokens), special_token_ids=SPECIAL, seq_offset=500, config=CONFIG)
    ref = reference(acts, tokens, SPECIAL, seq_offset=500, top_k=CONFIG.top_k, reservoir_size=CONFIG.reservoir_size,
                    pool_size=negative_pool_size(CONFIG), window_before=CONFIG.window_before, window_after=CONFIG.window_after, seed=CONFIG.seed)
    return tokens, summary, ref, select_examples(summary, CONFIG)


def test_stats_and_histograms(case):
    _, _, ref, drafts = case
    assert [d.feature_index for d in drafts] == list(range(len(drafts)))
    for d in drafts:
        s, f = d.stats, d.feature_index
        assert (s.n_tokens, s.n_firing) == (ref.n_tokens, int(ref.n_firing[f]))
        assert s.max_activation == pytest.approx(float(ref.max_activation[f]), rel=1e-7)
        assert s.sum_activation == pytest.approx(float(ref.sum_activation[f]), rel=1e-6)
        assert s.is_rare == (0 < s.n_firing < CONFIG.rare_below)
        if s.is_dead:
            assert d.examples == () and s.histogram_counts == ()
            continue
        values = ref.acts[..., f][ref.acts[..., f] > 0]
        edges = np.array(s.histogram_edges)
        assert len(s.histogram_counts) <= CONFIG.histogram_bins and np.all(np.diff(edges) > 0)
        inside = np.searchsorted(edges, values, side="right") - 1
        inside[values == edges[-1]] = len(edges) - 2  # the last bin is closed at the max
        assert np.bincount(inside, minlength=len(edges) - 1).tolist() == list(s.histogram_counts)
    assert drafts[0].stats.is_dead and drafts[1].stats.n_firing == 1 and drafts[1].stats.is_rare


def test_top_windows_are_the_exact_top_k(case):
    tokens, summary, ref, drafts = case
    for d in drafts:
        top = d.examples[: len(ref.top[d.feature_index])]
        assert [w.kind for w in top] == ["top"] * len(top) and [w.rank for w in top] == list(range(len(top)))
        assert [(w.max_activation, w.seq_index, w.max_position) for w in top] == ref.top[d.feature_index]
        for w in top:
            check_window(w, d, tokens, ref, offset=500)
    assert drafts[1].examples[0].max_position == 1  # right after CLS still ranks


def test_quantile_windows_are_stratified_reservoir_entries(case):
    tokens, _, ref, drafts = case
    for d in drafts:
        f = d.feature_index
        quantile = [w for w in d.examples if w.kind == "quantile"]
        top_windows = {(s, ref.window_start(p)) for _, s, p in ref.top[f]}
        pool = {(o >> 16, o & 0xFFFF) for o in ref.reservoir[f]}
        # a reservoir entry whose window overlaps a top window would show that passage again
        apart = {(s, p) for s, p in pool if all(s != ts or abs(ref.window_start(p) - t0) >= ref.window_len for ts, t0 in top_windows)}
        eligible = len(apart)
        for w in quantile:
            assert (w.seq_index, w.max_position) in apart
            assert 1 <= w.quantile <= CONFIG.n_quantiles
            check_window(w, d, tokens, ref, offset=500)
        by_bin = {q: sorted(w.max_activation for w in quantile if w.quantile == q) for q in range(1, CONFIG.n_quantiles + 1)}
        if eligible >= CONFIG.n_quantiles * CONFIG.per_quantile:
            assert all(len(v) == CONFIG.per_quantile for v in by_bin.values())
        else:
            assert len(quantile) <= eligible
        filled = [v for v in by_bin.values() if v]
        assert all(a[-1] <= b[0] for a, b in zip(filled, filled[1:]))  # bins ascend in activation


def test_negative_windows_are_silent_for_their_feature(case):
    tokens, _, ref, drafts = case
    counts = []
    for d in drafts:
        negatives = [w for w in d.examples if w.kind == "negative"]
        counts.append(len(negatives))
        assert len(negatives) <= CONFIG.n_negatives and len({(w.seq_index, w.window_start) for w in negatives}) == len(negatives)
        for w in negatives:
            window = ref.acts[w.seq_index - 500, w.window_start : w.window_start + len(w.token_ids), d.feature_index]
            assert not window.any() and not w.activations_q.any()
            np.testing.assert_array_equal(w.token_ids, tokens[w.seq_index - 500, w.window_start : w.window_start + len(w.token_ids)])
    assert counts[2] == CONFIG.n_negatives  # a sparse feature gets all of them


def test_selection_is_deterministic_and_restrictable(case):
    _, summary, _, drafts = case
    again = select_examples(summary, CONFIG, feature_indices=[5, 3])
    assert [d.feature_index for d in again] == [3, 5]
    for d in again:
        assert [window_tuple(w) for w in d.examples] == [window_tuple(w) for w in drafts[d.feature_index].examples]


def test_both_window_capture_paths_agree():
    rng = np.random.default_rng(3)
    acts = torch.from_numpy(np.where(rng.random((6, 16, 40)) < 0.1, rng.exponential(size=(6, 16, 40)), 0).astype(np.float32))
    flat = acts.view(-1)
    index = flat.nonzero().squeeze(1)
    kwargs = dict(seq_len=16, n_feat=40, window_len=7, window_before=4)
    args = (flat, index // 40, index % 40, flat[index])
    gathered = BatchWindows(*args, **kwargs, sort_when_values_exceed_nonzeros=float("inf")).capture(torch.arange(index.numel()))
    searched = BatchWindows(*args, **kwargs, sort_when_values_exceed_nonzeros=0.0).capture(torch.arange(index.numel()))
    torch.testing.assert_close(gathered, searched, rtol=0, atol=0)


def window_tuple(w):
    return (w.kind, w.quantile, w.rank, w.seq_index, w.window_start, w.token_ids.tolist(), w.activations_q.tolist(), w.scale, w.max_position, w.max_activation)


def check_window(w, draft, tokens, ref, *, offset):
    """Tokens match the sequence; bytes * scale match brute force within one quantization step."""
    f = draft.feature_index
    assert w.scale == pytest.approx(draft.stats.max_activation / 255, rel=1e-6)
    assert w.window_start <= w.max_position < w.window_start + len(w.token_ids) == w.window_start + ref.window_len
    np.testing.assert_array_equal(w.token_ids, tokens[w.seq_index - offset, w.window_start : w.window_start + ref.window_len])
    expected = np.maximum(ref.acts[w.seq_index - offset, w.window_start : w.window_start + ref.window_len, f], 0)
    np.testing.assert_allclose(w.activations(), expected, atol=w.scale * 1.0 + 1e-6)
    assert w.max_activation == pytest.approx(float(expected[w.max_position - w.window_start]), rel=1e-7)
