"""The streaming state of one SAE during a pass: fed one batch of activations at a time, on any device.

Per batch it works on the non-zeros (DESIGN.md section 4): one `nonzero` over the flat activations, then
bincount / index_add for counts, sums and the histogram, and a filter against each feature's current
k-th best (top-k) or largest kept key (reservoir) so only a handful of candidates reach a sort. A window
is copied, quantized, at the moment its entry is kept, while the batch is still in memory: one pass.

Measured reasons for the shape (2 threads, 4096 tokens x 6144 features, ~1 % non-zero): dense per-feature
reductions over the token axis cost 60-70 ms each, while the flat `nonzero` plus every per-non-zero step
costs ~25 ms together; a window gather costs ~25 ns per byte, so windows are captured only for entries
that survive their batch. The histogram needs every non-zero value's bin, so `nonzero` is needed at any
density and every other step reuses its output.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from labeler.activations import histogram as hist
from labeler.activations.keys import EMPTY_KEY, MAX_FEATURES, feature_salts
from labeler.activations.slots import SlotTable
from labeler.activations.summary import SampleSlots, ShardSummary, referenced_sequences
from labeler.config import ActivationConfig
from labeler.errors import ConfigError, LabelerError

_INV_BITS = 0x7FFFFFFF


def window_len(config: ActivationConfig, context_size: int) -> int:
    return min(config.window_before + 1 + config.window_after, context_size)


def negative_pool_size(config: ActivationConfig) -> int:
    """Random positions kept per shard as negative candidates, shared by all features.

    8x n_negatives (at least 64) leaves each feature enough windows where it is silent; the cost is one
    bit per feature per slot (256 x 6144 features = 1.5 MB at the defaults).
    """
    return max(64, 8 * config.n_negatives) if config.n_negatives else 0


def value_rank_key(values: torch.Tensor) -> torch.Tensor:
    """Rank key of positive float32 activations: smaller key = larger activation (bits are monotone)."""
    return _INV_BITS - values.view(torch.int32).to(torch.int64)


def value_of_rank_key(key: torch.Tensor) -> torch.Tensor:
    return (_INV_BITS - key).to(torch.int32).view(torch.float32)


BOOKKEEPING_THREADS = 1


@contextmanager
def bookkeeping_threads(device: torch.device) -> Iterator[None]:
    """Run the per-batch bookkeeping on BOOKKEEPING_THREADS CPU threads (the forward and encode keep all).

    It is ~150 small, memory-bound ops per batch: a second thread barely speeds them up, and on a shared
    CPU every parallel op waits for both threads to be scheduled. Measured here (2 cores shared with
    other jobs, 3072 features, ~0.8 % non-zero): 1.0-5.0 s per batch on 2 threads, 0.08-0.45 s on 1.
    """
    if device.type != "cpu" or torch.get_num_threads() <= BOOKKEEPING_THREADS:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(BOOKKEEPING_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class FeatureAccumulator:
    """Per-feature counts, sums, histogram, top-k, reservoir and negative pool of one SAE over one shard."""

    def __init__(self, *, d_sae: int, context_size: int, config: ActivationConfig, device: torch.device | str):
        if d_sae > MAX_FEATURES:
            raise ConfigError(f"SAEs with more than {MAX_FEATURES} features are not supported (this one has {d_sae})")
        self.config = config
        self.d_sae = d_sae
        self.context_size = context_size
        self.window_len = window_len(config, context_size)
        self.device = torch.device(device)
        self.n_tokens = 0
        self.n_sequences = 0
        self.n_firing = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.sum_activation = torch.zeros(d_sae, dtype=torch.float64, device=device)
        self.histogram = torch.zeros((d_sae, hist.N_FINE_BINS), dtype=torch.int64, device=device)
        self.top = SlotTable.empty(d_sae, config.top_k, self.window_len, device)
        self.top_floor = torch.zeros(d_sae, dtype=torch.float32, device=device)  # k-th best value; 0 until full
        self.reservoir = SlotTable.empty(d_sae, config.reservoir_size, self.window_len, device)
        self.pool = SlotTable.empty(1, negative_pool_size(config), d_sae, device)
        self.salts = torch.from_numpy(feature_salts(d_sae, config.seed)).to(self.device)

    # ---- one batch -----------------------------------------------------------------------------------

    def update(self, acts: torch.Tensor, *, special: torch.Tensor, order: torch.Tensor, reservoir_key: torch.Tensor, pool_key: torch.Tensor) -> None:
        """Fold one batch in. acts [B, S, F] float32 (modified: special rows are zeroed); special [B, S] bool;
        order / reservoir_key / pool_key [B*S] int64 per token (pool_key EMPTY_KEY on special tokens)."""
        with bookkeeping_threads(acts.device):
            self._update(acts, special=special, order=order, reservoir_key=reservoir_key, pool_key=pool_key)

    def _update(self, acts, *, special, order, reservoir_key, pool_key) -> None:
        n_seq, seq_len, n_feat = acts.shape
        if n_feat != self.d_sae or seq_len != self.context_size:
            raise LabelerError(f"activations of shape {tuple(acts.shape)} do not match d_sae {self.d_sae} / context {self.context_size}")
        flat2d = acts.view(n_seq * seq_len, n_feat)
        special_rows = special.reshape(-1).nonzero().squeeze(1)
        if special_rows.numel():
            flat2d[special_rows] = 0
        self.n_tokens += n_seq * seq_len - special_rows.numel()
        self.n_sequences += n_seq

        flat = acts.view(-1)
        index = flat.nonzero().squeeze(1)
        value = flat[index]
        positive = value > 0
        if not bool(positive.all()):  # SAEs with signed outputs: only positive activations fire
            index, value = index[positive], value[positive]
        feature = index % n_feat
        token = index // n_feat  # ascending: nonzero returns row-major order

        self.n_firing += torch.bincount(feature, minlength=n_feat)
        self.sum_activation.index_add_(0, feature, value.to(torch.float64))
        fine = feature * hist.N_FINE_BINS + hist.fine_codes(value)
        self.histogram.view(-1).index_add_(0, fine, torch.ones_like(fine))

        windows = BatchWindows(flat, token, feature, value, seq_len=seq_len, n_feat=n_feat, window_len=self.window_len, window_before=self.config.window_before)

        if self.top.n_slots:
            cand = (value > self.top_floor[feature]).nonzero().squeeze(1)
            if self.config.top_distinct_sequences:
                cand = cand[best_per_sequence(feature[cand] * n_seq + token[cand] // seq_len, value_rank_key(value[cand]))]
            self.top.offer(feature[cand], value_rank_key(value[cand]), order[token[cand]], value[cand], lambda i: windows.capture(cand[i]))
            full = self.top.worst != EMPTY_KEY
            self.top_floor = torch.where(full, value_of_rank_key(self.top.worst.clamp(max=_INV_BITS)), 0.0)

        if self.reservoir.n_slots:
            rkey = (reservoir_key[token] ^ self.salts[feature]).clamp_(max=EMPTY_KEY - 1)
            cand = (rkey < self.reservoir.worst[feature]).nonzero().squeeze(1)
            self.reservoir.offer(feature[cand], rkey[cand], order[token[cand]], value[cand], lambda i: windows.capture(cand[i]))

        if self.pool.n_slots:
            cand = (pool_key < self.pool.worst[0]).nonzero().squeeze(1)
            zeros = torch.zeros_like(cand)
            self.pool.offer(zeros, pool_key[cand], order[cand], zeros.to(torch.float32), lambda i: windows.firing_masks(cand[i], self.d_sae))

    # ---- end of pass ---------------------------------------------------------------------------------

    def finish(self, tokens: torch.Tensor, seq_offset: int) -> ShardSummary:
        """Freeze into a ShardSummary; `tokens` [n_seq, S] are the shard's tokens (global index seq_offset + row)."""
        top = SampleSlots.from_table(self.top)
        if np.isnan(top.value).any():
            raise LabelerError("the SAE produced NaN activations; check the SAE weights and the model dtype")
        reservoir = SampleSlots.from_table(self.reservoir)
        pool = SampleSlots.from_table(self.pool)
        token_rows = tokens.cpu().numpy()
        sequences = {int(i): token_rows[int(i) - seq_offset].astype(np.int32) for i in referenced_sequences(top, reservoir, pool)}
        return ShardSummary(
            d_sae=self.d_sae,
            context_size=self.context_size,
            window_before=self.config.window_before,
            window_after=self.config.window_after,
            seed=self.config.seed,
            n_tokens=int(self.n_tokens),
            n_sequences=int(self.n_sequences),
            n_firing=self.n_firing.cpu().numpy(),
            sum_activation=self.sum_activation.cpu().numpy(),
            histogram=self.histogram.cpu().numpy(),
            top=top,
            reservoir=reservoir,
            pool=pool,
            sequences=sequences,
        )


def best_per_sequence(group: torch.Tensor, rank_key: torch.Tensor) -> torch.Tensor:
    """Indices of the entries that are the best of their group (feature, row), ascending.

    Entries come in token order and a smaller rank key is a larger activation, so ties go to the
    earliest position. A sequence is one row of a batch and never spans two, so one entry per (feature,
    row) in every batch is one per (feature, sequence) over the whole pass.
    """
    if group.numel() < 2:
        return torch.arange(group.numel(), device=group.device)
    best_first = torch.sort(rank_key, stable=True).indices
    grouped, perm = torch.sort(group[best_first], stable=True)
    first = torch.ones_like(grouped, dtype=torch.bool)
    first[1:] = grouped[1:] != grouped[:-1]
    return torch.sort(best_first[perm[first]]).values


class BatchWindows:
    """Copies windows out of one batch's activations for the entries that were just kept.

    Two ways, chosen by measured cost: gathering W values per window from the dense [tokens, features]
    tensor costs ~25 ns per value (a cache miss each: a feature's column is strided by F), so once the
    windows of a batch need more values than ~1.5x its non-zeros, it is cheaper to sort the non-zeros by
    (feature, token) once and read each window's few non-zeros with two binary searches. At ~1 %
    density the sorted path wins from the first hundred thousand values; at high density, gathering.
    """

    SORT_WHEN_VALUES_EXCEED_NONZEROS = 1.5

    def __init__(self, flat, token, feature, value, *, seq_len, n_feat, window_len, window_before, sort_when_values_exceed_nonzeros=SORT_WHEN_VALUES_EXCEED_NONZEROS):
        self.flat, self.token, self.feature, self.value = flat, token, feature, value
        self.sort_when = sort_when_values_exceed_nonzeros
        self.seq_len, self.n_feat, self.window_len, self.window_before = seq_len, n_feat, window_len, window_before
        self.n_rows = flat.numel() // n_feat
        self._by_feature: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def first_rows(self, token: torch.Tensor) -> torch.Tensor:
        """Batch row of each window's first token: shifted, not cut, at the sequence edges."""
        position = token % self.seq_len
        start = (position - self.window_before).clamp_(0, self.seq_len - self.window_len)
        return token - position + start

    def capture(self, nonzero: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of the given non-zeros (indices into this batch's non-zeros), each computed once per
        batch even when both the top-k and the reservoir keep it (most entries of a first batch)."""
        if self._cache is None:
            n = self.value.numel()
            self._cache = (
                torch.zeros(n, dtype=torch.bool, device=self.value.device),
                torch.empty((n, self.window_len), dtype=torch.uint8, device=self.value.device),
                torch.empty(n, dtype=torch.float32, device=self.value.device),
            )
        done, windows, window_max = self._cache
        todo = nonzero[~done[nonzero]]
        if todo.numel():
            windows[todo], window_max[todo] = self._quantized(self.token[todo], self.feature[todo])
            done[todo] = True
        return windows[nonzero], window_max[nonzero]

    def _quantized(self, token: torch.Tensor, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This feature's activation on every token of each window, quantized to the window's own max."""
        first = self.first_rows(token)
        n_values = token.numel() * self.window_len
        if self._by_feature is None and n_values < self.sort_when * self.value.numel():
            rows = first[:, None] + torch.arange(self.window_len, device=token.device)
            values = self.flat[rows * self.n_feat + feature[:, None]].clamp_(min=0)
        else:
            values = self._from_sorted_nonzeros(first, feature)
        window_max = values.amax(dim=1)
        quantized = torch.round(values * (255.0 / window_max)[:, None]).to(torch.uint8)
        return quantized, window_max

    def _from_sorted_nonzeros(self, first: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if self._by_feature is None:
            cell = self.feature * self.n_rows + self.token
            perm = torch.argsort(cell)
            self._by_feature = (cell[perm], self.value[perm])
        cells, values = self._by_feature
        lo_cell = feature * self.n_rows + first
        lo = torch.searchsorted(cells, lo_cell)
        hi = torch.searchsorted(cells, lo_cell + self.window_len)
        out = torch.zeros((first.numel(), self.window_len), dtype=torch.float32, device=first.device)
        which, at = _expand_ranges(lo, hi)
        out[which, cells[at] - lo_cell[which]] = values[at]
        return out

    def firing_masks(self, token: torch.Tensor, n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        """0/1 per feature: does it fire anywhere in the window around each position? (non-zeros are token-sorted)"""
        first = self.first_rows(token)
        lo = torch.searchsorted(self.token, first)
        hi = torch.searchsorted(self.token, first + self.window_len)
        masks = torch.zeros((token.numel(), n_features), dtype=torch.uint8, device=token.device)
        which, at = _expand_ranges(lo, hi)
        masks[which, self.feature[at]] = 1
        return masks, torch.zeros(token.numel(), dtype=torch.float32, device=token.device)


def _expand_ranges(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ranges [lo_i, hi_i): (i, j) for every j in each range, as two flat index tensors."""
    counts = hi - lo
    which = torch.repeat_interleave(torch.arange(lo.numel(), device=lo.device), counts)
    offsets = torch.cumsum(counts, 0) - counts
    at = lo[which] + torch.arange(which.numel(), device=lo.device) - offsets[which]
    return which, at
