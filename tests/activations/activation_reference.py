"""Brute force, straight from the definitions: what one pass must equal.

Dense numpy over every (sequence, position, feature); only the random keys are shared with the library
(a key is a definition, a hash of seed and position; what is tested is which entries are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeler.activations.histogram import N_FINE_BINS, fine_lower_edges
from labeler.activations.keys import pack_order, reservoir_keys, token_keys
from labeler.activations.summary import SampleSlots


@dataclass
class Reference:
    acts: np.ndarray  # [n, S, F] with special tokens zeroed
    special: np.ndarray  # [n, S] bool
    n_tokens: int
    n_firing: np.ndarray
    sum_activation: np.ndarray
    max_activation: np.ndarray
    histogram: np.ndarray
    top: list[list[tuple[float, int, int]]]  # per feature: (value, seq_index, position), best first (one per sequence by default)
    reservoir: list[list[int]]  # per feature: packed orders, smallest key first
    pool: list[int]  # packed orders, smallest key first
    window_len: int
    window_before: int
    seq_offset: int

    def window_start(self, position: int) -> int:
        return int(np.clip(position - self.window_before, 0, self.acts.shape[1] - self.window_len))

    def window(self, seq_index: int, position: int, feature: int) -> np.ndarray:
        start = self.window_start(position)
        return np.maximum(self.acts[seq_index - self.seq_offset, start : start + self.window_len, feature], 0)


def reference(acts, tokens, special_ids, *, seq_offset, top_k, reservoir_size, pool_size, window_before, window_after, seed, top_distinct_sequences=True) -> Reference:
    acts = np.asarray(acts, dtype=np.float32)
    tokens = np.asarray(tokens)
    n, S, F = acts.shape
    special = np.isin(tokens, list(special_ids))
    a = np.where(special[:, :, None], np.float32(0), acts)
    firing = a > 0
    order = pack_order(np.arange(seq_offset, seq_offset + n)[:, None], np.arange(S)[None, :])  # [n, S]
    edges = fine_lower_edges()

    histogram = np.zeros((F, N_FINE_BINS), dtype=np.int64)
    top, reservoir = [], []
    for f in range(F):
        seqs, positions = np.nonzero(firing[:, :, f])
        values = a[seqs, positions, f]
        bins = np.searchsorted(edges, values.astype(np.float64), side="right") - 1
        histogram[f] = np.bincount(bins, minlength=N_FINE_BINS)
        ranked = sorted(zip((-values).tolist(), (seqs + seq_offset).tolist(), positions.tolist()))
        if top_distinct_sequences:  # each sequence's best position only
            ranked = [e for i, e in enumerate(ranked) if all(e[1] != d[1] for d in ranked[:i])]
        ranked = ranked[:top_k]
        top.append([(-v, s, p) for v, s, p in ranked])
        orders = order[seqs, positions]
        keys = reservoir_keys(np.broadcast_to(orders, (F, orders.size)), seed)[f] if orders.size else orders
        reservoir.append([o for _, o in sorted(zip(keys.tolist(), orders.tolist()))[:reservoir_size]])
    ordinary = order[~special]
    pool_keys = token_keys(ordinary, seed, purpose="pool")
    pool = [o for _, o in sorted(zip(pool_keys.tolist(), ordinary.tolist()))[:pool_size]]
    return Reference(
        acts=a, special=special, n_tokens=int((~special).sum()),
        n_firing=firing.sum(axis=(0, 1)), sum_activation=np.where(firing, a, 0).astype(np.float64).sum(axis=(0, 1)),
        max_activation=np.where(firing, a, 0).max(axis=(0, 1)) if n * S else np.zeros(F), histogram=histogram,
        top=top, reservoir=reservoir, pool=pool,
        window_len=min(window_before + 1 + window_after, S), window_before=window_before, seq_offset=seq_offset,
    )


def kept(slots: SampleSlots, row: int) -> list[int]:
    """A row's valid entries as packed orders, in (key, order) order."""
    valid = slots.valid[row]
    keys, orders = slots.key[row][valid], slots.order[row][valid]
    return [o for _, o in sorted(zip(keys.tolist(), orders.tolist()))]


def canonical(slots: SampleSlots) -> list[list[tuple]]:
    """Every row as (key, order, value, window bytes, window max) sorted by (key, order): slot positions differ between runs."""
    rows = []
    for f in range(slots.key.shape[0]):
        valid = np.flatnonzero(slots.valid[f])
        entries = [
            (int(slots.key[f, i]), int(slots.order[f, i]), float(slots.value[f, i]), slots.window[f, i].tobytes(), float(slots.window_max[f, i]))
            for i in valid
        ]
        rows.append(sorted(entries))
    return rows
