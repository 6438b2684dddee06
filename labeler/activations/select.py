"""From a merged ShardSummary to each feature's statistics and example windows (top, quantile, negative).

Deterministic given `config.seed`: every random choice is a hash of (seed, feature, position).
Windows are re-quantized from their capture scale (window max / 255) to the feature's scale
(feature max / 255), so one feature's windows share one scale: activation = byte * scale, and the error
is at most one feature-scale step (half a step from each rounding).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from labeler.activations.histogram import coarse_histogram
from labeler.activations.keys import selection_salts, splitmix64, unpack_order
from labeler.activations.summary import SampleSlots, ShardSummary
from labeler.config import ActivationConfig
from labeler.types import FeatureExamples, FeatureStats, Window


@dataclass(frozen=True)
class FeatureExamplesDraft:
    """One feature's stats and windows before it has a database id (FeatureExamples minus sae_id).

    Dead features (stats.n_firing == 0) have no examples. Quantile bins are numbered 1 (lowest
    activations) .. n_quantiles (highest); top and negative windows have quantile 0.
    """

    stats: FeatureStats
    examples: tuple[Window, ...]

    @property
    def feature_index(self) -> int:
        return self.stats.feature_index

    def with_sae(self, sae_id: int) -> FeatureExamples:
        return FeatureExamples(sae_id=sae_id, feature_index=self.feature_index, stats=self.stats, examples=self.examples)


@dataclass(frozen=True)
class _Picks:
    """Selected entries of one sample table, as parallel arrays (one row per window)."""

    feature: np.ndarray
    slot: np.ndarray
    quantile: np.ndarray
    rank: np.ndarray


def _top_picks(top: SampleSlots) -> _Picks:
    """All valid top-k entries, ranked by (value desc, seq, position) per feature."""
    perm = np.lexsort((top.order, top.key), axis=1)
    valid = np.take_along_axis(top.valid, perm, axis=1)
    feature, rank = np.nonzero(valid)
    return _Picks(feature=feature, slot=perm[feature, rank], quantile=np.zeros_like(rank), rank=rank)


def _overlaps_top(summary: ShardSummary) -> np.ndarray:
    """[F, reservoir slots]: does this reservoir entry's window overlap one of its feature's top-k windows?"""
    res, top = summary.reservoir, summary.top
    res_seq, res_pos = unpack_order(res.order)
    res_start = summary.window_start(res_pos)
    top_seq, top_pos = unpack_order(top.order)
    top_start = summary.window_start(top_pos)
    # same sequence is rare: compare starts only for those (feature, reservoir slot, top slot) triples
    f, r, k = np.nonzero((res_seq[:, :, None] == top_seq[:, None, :]) & top.valid[:, None, :])
    close = np.abs(res_start[f, r] - top_start[f, k]) < summary.window_len
    overlap = np.zeros(res.order.shape, dtype=bool)
    overlap[f[close], r[close]] = True
    return overlap


def _quantile_picks(summary: ShardSummary, config: ActivationConfig) -> _Picks:
    """Per feature: sort the reservoir (minus entries whose window overlaps a top-k window: that passage is
    shown already) by activation, cut it into n_quantiles equal-count bins, take per_quantile entries at
    random from each bin."""
    res = summary.reservoir
    n_q = config.n_quantiles
    if n_q == 0 or config.per_quantile == 0 or res.key.shape[1] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Picks(empty, empty, empty, empty)
    eligible = res.valid & ~_overlaps_top(summary)
    # ascending activation among eligible entries (ineligible sort last)
    by_value = np.lexsort((res.order, np.where(eligible, res.value, np.inf)), axis=1)
    m = eligible.sum(axis=1, keepdims=True)
    j = np.arange(res.key.shape[1])[None, :]
    bin_sorted = np.where(j < m, (j * n_q) // np.maximum(m, 1), n_q)  # equal-count bins, sizes differ by <= 1
    salts = selection_salts(summary.d_sae, summary.seed, purpose="quantile")[:, None]
    random = splitmix64(np.take_along_axis(res.order, by_value, axis=1).view(np.uint64) ^ salts)
    within = np.lexsort((random, bin_sorted), axis=1)  # by bin, then at random inside the bin
    bins = np.take_along_axis(bin_sorted, within, axis=1)
    slots = np.take_along_axis(by_value, within, axis=1)
    starts = np.ones_like(bins, dtype=bool)
    starts[:, 1:] = bins[:, 1:] != bins[:, :-1]
    first_of_bin = np.maximum.accumulate(np.where(starts, j, 0), axis=1)
    rank_in_bin = j - first_of_bin
    chosen = (bins < n_q) & (rank_in_bin < config.per_quantile)
    feature, col = np.nonzero(chosen)
    return _Picks(feature=feature, slot=slots[feature, col], quantile=bins[feature, col] + 1, rank=rank_in_bin[feature, col])


def _negative_picks(summary: ShardSummary, n_negatives: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per feature: up to n_negatives pool windows where it never fires, in a per-feature random order.
    Returns (feature, pool slot, rank)."""
    pool = summary.pool
    valid = pool.valid[0]
    if n_negatives == 0 or not valid.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    slots = np.flatnonzero(valid)
    firing = pool.window[0, slots, :].T.astype(bool)  # [F, n_pool]
    salts = selection_salts(summary.d_sae, summary.seed, purpose="negative")
    order = splitmix64(pool.key[0, slots].view(np.uint64)[None, :] ^ salts[:, None])
    order = np.where(firing, np.iinfo(np.uint64).max, order)
    n_take = min(n_negatives, slots.size)
    part = np.argsort(order, axis=1, kind="stable")[:, :n_take]
    usable = ~np.take_along_axis(firing, part, axis=1) & (summary.n_firing > 0)[:, None]  # dead: stats only
    feature, rank = np.nonzero(usable)
    return feature, slots[part[feature, rank]], rank


def _stats(summary: ShardSummary, config: ActivationConfig, max_activation: np.ndarray) -> list[FeatureStats]:
    out = []
    n_firing = summary.n_firing.tolist()
    sums = summary.sum_activation.tolist()
    maxes = max_activation.astype(np.float64).tolist()
    for f in range(summary.d_sae):
        fired = n_firing[f]
        edges, counts = coarse_histogram(summary.histogram[f], maxes[f], config.histogram_bins) if fired else ((), ())
        out.append(
            FeatureStats(
                feature_index=f,
                n_tokens=summary.n_tokens,
                n_firing=fired,
                max_activation=maxes[f],
                sum_activation=sums[f],
                histogram_edges=edges,
                histogram_counts=counts,
                is_rare=0 < fired < config.rare_below,
            )
        )
    return out


@contextmanager
def _collector_paused():
    """Building ~500k windows would trigger dozens of full garbage collections (a third of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def select_examples(
    summary: ShardSummary, config: ActivationConfig, *, feature_indices: Iterable[int] | None = None
) -> list[FeatureExamplesDraft]:
    """Every feature's stats and windows: all top-k entries, per_quantile from each of n_quantiles
    activation bins of the reservoir (never overlapping a top-k window), and n_negatives silent windows.

    Rare features get whatever exists; dead ones get stats only. `feature_indices` restricts the output.
    """
    max_activation = summary.max_activation.astype(np.float32)
    feature_scale = max_activation / np.float32(255.0)
    stats = _stats(summary, config, max_activation)

    top = _top_picks(summary.top)
    quant = _quantile_picks(summary, config)
    neg_feature, neg_slot, neg_rank = _negative_picks(summary, config.n_negatives)

    # every chosen window as parallel arrays: kind 0 top, 1 quantile, 2 negative
    kind = np.concatenate([np.zeros(top.feature.size, np.int8), np.ones(quant.feature.size, np.int8), np.full(neg_feature.size, 2, np.int8)])
    feature = np.concatenate([top.feature, quant.feature, neg_feature])
    quantile = np.concatenate([top.quantile, quant.quantile, np.zeros_like(neg_rank)])
    rank = np.concatenate([top.rank, quant.rank, neg_rank])
    order = np.concatenate([summary.top.order[top.feature, top.slot], summary.reservoir.order[quant.feature, quant.slot], summary.pool.order[0, neg_slot]])
    value = np.concatenate([summary.top.value[top.feature, top.slot], summary.reservoir.value[quant.feature, quant.slot], np.zeros(neg_feature.size, np.float32)])
    captured = np.concatenate([summary.top.window[top.feature, top.slot], summary.reservoir.window[quant.feature, quant.slot], np.zeros((neg_feature.size, summary.window_len), np.uint8)])
    window_max = np.concatenate([summary.top.window_max[top.feature, top.slot], summary.reservoir.window_max[quant.feature, quant.slot], np.zeros(neg_feature.size, np.float32)])

    scale = feature_scale[feature]
    feature_max = max_activation[feature]
    ratio = np.divide(window_max, feature_max, out=np.zeros_like(feature_max), where=feature_max > 0)
    activations_q = np.clip(np.rint(captured * ratio[:, None]), 0, 255).astype(np.uint8)
    seq, position = unpack_order(order)
    window_start = summary.window_start(position)
    seq_ids = np.array(sorted(summary.sequences), dtype=np.int64)
    stacked = np.stack([summary.sequences[int(i)] for i in seq_ids]) if seq_ids.size else np.zeros((0, summary.context_size), np.int32)
    token_ids = stacked[np.searchsorted(seq_ids, seq)[:, None], window_start[:, None] + np.arange(summary.window_len)]

    # one pass in feature order: windows of feature f are the slice bounds[f]:bounds[f+1]
    by_feature = np.argsort(feature, kind="stable")
    bounds = np.searchsorted(feature[by_feature], np.arange(summary.d_sae + 1)).tolist()
    kinds = np.array(["top", "quantile", "negative"], dtype=object)[kind[by_feature]].tolist()
    with _collector_paused():
        windows = list(
            map(
                Window,
                kinds,
                quantile[by_feature].tolist(),
                rank[by_feature].tolist(),
                seq[by_feature].tolist(),
                window_start[by_feature].tolist(),
                list(token_ids[by_feature]),
                list(activations_q[by_feature]),
                scale[by_feature].astype(np.float64).tolist(),
                position[by_feature].tolist(),
                value[by_feature].astype(np.float64).tolist(),
            )
        )
    wanted = range(summary.d_sae) if feature_indices is None else sorted(set(int(i) for i in feature_indices))
    return [FeatureExamplesDraft(stats=stats[f], examples=tuple(windows[bounds[f] : bounds[f + 1]])) for f in wanted]
