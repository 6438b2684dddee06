"""Per-feature bounded samples: keep, for every feature, the k entries with the smallest (key, order).

Both the exact top-k (key = inverted value bits, so the largest activation has the smallest key) and the
uniform reservoir (key = a random hash) are this one structure; only the key differs.

An entry never moves once written: its window (W bytes) is written once, when it arrives, and only
overwritten by the entry that evicts it. Valid slots form a prefix of each row (`n_valid`), because an
entry only ever replaces an empty slot at the end or an evicted one. Per batch the work is proportional
to the candidates plus, for features whose rows are full, one pass over their rows to find the few worst
entries that may be evicted; never to the dense [tokens, features] activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from labeler.activations.keys import EMPTY_KEY, EMPTY_ORDER, KEY_BITS

# capture(candidate_indices) -> (windows uint8 [n, W], window_max float32 [n])
Capture = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def lexsort_feature_key_order(feature: torch.Tensor, key: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Permutation sorting by (feature, key, order): a stable sort by order, then one by the packed major key."""
    by_order = torch.argsort(order, stable=True)
    major = (feature[by_order] << KEY_BITS) | key[by_order]
    return by_order[torch.argsort(major, stable=True)]


def rank_within_feature(sorted_feature: torch.Tensor) -> torch.Tensor:
    """0-based position of each element among those of its feature, given features sorted ascending (O(n))."""
    _, counts = torch.unique_consecutive(sorted_feature, return_counts=True)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return torch.arange(sorted_feature.numel(), device=sorted_feature.device) - first


@dataclass
class SlotTable:
    """k slots per feature; `worst[f]` is the largest key in f's slots (EMPTY_KEY while any slot is empty)."""

    key: torch.Tensor  # int64 [F, k]
    order: torch.Tensor  # int64 [F, k]
    value: torch.Tensor  # float32 [F, k]
    window: torch.Tensor  # uint8 [F, k, W]
    window_max: torch.Tensor  # float32 [F, k]: activation = window byte * window_max / 255
    worst: torch.Tensor  # int64 [F]
    n_valid: torch.Tensor  # int64 [F]

    @classmethod
    def empty(cls, n_features: int, n_slots: int, window_len: int, device: torch.device | str = "cpu") -> "SlotTable":
        return cls(
            key=torch.full((n_features, n_slots), EMPTY_KEY, dtype=torch.int64, device=device),
            order=torch.full((n_features, n_slots), EMPTY_ORDER, dtype=torch.int64, device=device),
            value=torch.zeros((n_features, n_slots), dtype=torch.float32, device=device),
            window=torch.zeros((n_features, n_slots, window_len), dtype=torch.uint8, device=device),
            window_max=torch.zeros((n_features, n_slots), dtype=torch.float32, device=device),
            worst=torch.full((n_features,), EMPTY_KEY, dtype=torch.int64, device=device),
            n_valid=torch.zeros(n_features, dtype=torch.int64, device=device),
        )

    @classmethod
    def from_sorted_rows(cls, key, order, value, window, window_max) -> "SlotTable":
        """Rows whose empty slots come last (sorted rows, or any valid-prefix rows)."""
        n_valid = (key != EMPTY_KEY).sum(dim=1)
        full = n_valid == key.shape[1]
        worst = torch.where(full, key.amax(dim=1) if key.shape[1] else EMPTY_KEY, EMPTY_KEY)
        return cls(key=key, order=order, value=value, window=window, window_max=window_max, worst=worst, n_valid=n_valid)

    @property
    def n_slots(self) -> int:
        return self.key.shape[1]

    def offer(self, feature: torch.Tensor, key: torch.Tensor, order: torch.Tensor, value: torch.Tensor, capture: Capture) -> None:
        """Insert the candidates that belong among their feature's k best; capture windows only for those.

        Preconditions (the caller's filter and batch order guarantee both): key < worst[feature], and
        candidates come in ascending `order`, later than every stored entry.
        A feature with enough empty slots takes its candidates directly. A full feature with c candidates
        can only lose its c worst entries (ties included), so only those are sorted with the candidates;
        exactly as many old slots drop out as candidates stay, and they pair up in feature order.
        """
        if feature.numel() == 0:
            return
        k = self.n_slots
        perm = torch.argsort((feature << KEY_BITS) | key, stable=True)  # ties keep ascending order
        sorted_feature = feature[perm]
        rank = rank_within_feature(sorted_feature)
        if bool((rank >= k).any()):  # a feature's k-th best candidate of this batch bounds the rest
            kept = rank < k
            perm, sorted_feature, rank = perm[kept], sorted_feature[kept], rank[kept]
        touched, counts = torch.unique_consecutive(sorted_feature, return_counts=True)
        n_valid = self.n_valid[touched]
        fits = counts <= k - n_valid
        fits_each = fits.repeat_interleave(counts)

        arriving = [perm[fits_each]]
        dest_feature = [sorted_feature[fits_each]]
        dest_slot = [self.n_valid[dest_feature[0]] + rank[fits_each]]
        if not bool(fits.all()):
            idx, f, slot = self._merge_into_full(touched[~fits], counts[~fits], perm[~fits_each], sorted_feature[~fits_each], key, order)
            arriving.append(idx)
            dest_feature.append(f)
            dest_slot.append(slot)
        arriving_idx = torch.cat(arriving)
        f_dest, slot_dest = torch.cat(dest_feature), torch.cat(dest_slot)
        if arriving_idx.numel():
            windows, window_max = capture(arriving_idx)
            self.key[f_dest, slot_dest] = key[arriving_idx]
            self.order[f_dest, slot_dest] = order[arriving_idx]
            self.value[f_dest, slot_dest] = value[arriving_idx]
            self.window[f_dest, slot_dest] = windows
            self.window_max[f_dest, slot_dest] = window_max
        self.n_valid[touched] = torch.clamp(n_valid + counts, max=k)
        now_full = touched[self.n_valid[touched] == k]
        if now_full.numel():
            self.worst[now_full] = self.key[now_full].amax(dim=1)

    def _merge_into_full(self, features, counts, cand_idx, cand_feature, key, order):
        """For features that must evict: (candidate index, feature, slot) of each candidate that stays."""
        rows = self.key[features]  # [n, k]; empty slots hold EMPTY_KEY, the largest key
        largest = rows.topk(int(counts.max()), dim=1).values
        threshold = largest.gather(1, (counts - 1)[:, None])  # each row's c-th largest key
        row_i, old_slot = (rows >= threshold).nonzero(as_tuple=True)  # every entry that could drop out
        old_feature = features[row_i]
        n_old = torch.bincount(row_i, minlength=features.numel())

        union_feature = torch.cat([old_feature, cand_feature])
        union_key = torch.cat([self.key[old_feature, old_slot], key[cand_idx]])
        union_order = torch.cat([self.order[old_feature, old_slot], order[cand_idx]])
        source = torch.cat([old_slot, -1 - cand_idx])  # >= 0: old slot; < 0: candidate
        perm = lexsort_feature_key_order(union_feature, union_key, union_order)
        sorted_feature, sorted_source = union_feature[perm], source[perm]
        # per feature, the union holds n_old old + c new entries; the n_old best stay
        keep_n = torch.zeros(self.key.shape[0], dtype=torch.int64, device=rows.device)
        keep_n[features] = n_old
        keep = rank_within_feature(sorted_feature) < keep_n[sorted_feature]
        is_old = sorted_source >= 0
        freed = ~keep & is_old
        staying = keep & ~is_old
        if int(freed.sum()) != int(staying.sum()):  # an invariant of the algorithm, not a user error
            raise AssertionError("slot accounting broke: candidates must beat their feature's worst key")
        return -1 - sorted_source[staying], sorted_feature[freed], sorted_source[freed]


def merge_tables(tables: list[SlotTable]) -> SlotTable:
    """The k smallest (key, order) entries per feature over several tables (exact, order-independent)."""
    k = tables[0].n_slots
    key = torch.cat([t.key for t in tables], dim=1)
    order = torch.cat([t.order for t in tables], dim=1)
    perm = torch.argsort(order, dim=1, stable=True)
    perm = perm.gather(1, torch.argsort(key.gather(1, perm), dim=1, stable=True))[:, :k]

    def take(parts: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.cat(parts, dim=1)
        if stacked.dim() == 3:
            return stacked.gather(1, perm[:, :, None].expand(-1, -1, stacked.shape[2]))
        return stacked.gather(1, perm)

    return SlotTable.from_sorted_rows(
        key=take([t.key for t in tables]),
        order=take([t.order for t in tables]),
        value=take([t.value for t in tables]),
        window=take([t.window for t in tables]),
        window_max=take([t.window_max for t in tables]),
    )
