"""ShardSummary: everything one pass keeps about an SAE's features over some sequences, mergeable and compact.

Sizes (6144 features, top_k 20, reservoir 200, 33-token windows): ~45 MB in memory, almost all of it
quantized windows; ~1.6 KB per feature serialized (4.9 MB for 3072 features at ~0.8 % density), since
keys are rebuilt rather than stored and windows of sparse features are mostly zero bytes.
Nothing here grows with the number of tokens except `sequences`, which holds only the sequences some kept
entry points into (bounded by the number of entries).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import numpy as np
import torch

from labeler.activations.keys import EMPTY_KEY, rebuild_keys, unpack_order
from labeler.activations.slots import SlotTable, merge_tables
from labeler.errors import ConfigError, LabelerError

FORMAT_MAGIC = b"SAELSUM1"
FORMAT_VERSION = 1
ZLIB_LEVEL = 1  # level 1 already shrinks mostly-zero windows ~5x; higher levels cost seconds for a few %


@dataclass(frozen=True, eq=False)
class SampleSlots:
    """A per-feature bounded sample (top-k or reservoir or negative pool) as plain arrays; empty slots have key EMPTY_KEY."""

    key: np.ndarray  # int64 [F, k]
    order: np.ndarray  # int64 [F, k]: seq_index << 16 | position
    value: np.ndarray  # float32 [F, k]: the activation at that position
    window: np.ndarray  # uint8 [F, k, W]: round(activation * 255 / window_max)
    window_max: np.ndarray  # float32 [F, k]: the largest activation in the window

    @classmethod
    def from_table(cls, table: SlotTable) -> "SampleSlots":
        return cls(
            key=table.key.cpu().numpy(),
            order=table.order.cpu().numpy(),
            value=table.value.cpu().numpy(),
            window=table.window.cpu().numpy(),
            window_max=table.window_max.cpu().numpy(),
        )

    def to_table(self) -> SlotTable:
        return SlotTable.from_sorted_rows(
            **{f.name: torch.from_numpy(getattr(self, f.name)) for f in fields(SampleSlots)}
        )

    @property
    def valid(self) -> np.ndarray:
        return self.key != EMPTY_KEY


@dataclass(frozen=True, eq=False)
class ShardSummary:
    """One SAE's per-feature summaries over a shard (or, once merged, over the whole dataset).

    `n_tokens` counts ordinary tokens only: special tokens (BOS/CLS/SEP/pad) are never counted, ranked or
    sampled, and show activation 0 inside windows.
    `pool` is one row ([1, M]) of random token positions; its "window" is a 0/1 mask over features that
    fire anywhere in the window, from which each feature draws its negatives.
    """

    d_sae: int
    context_size: int
    window_before: int
    window_after: int
    seed: int
    n_tokens: int
    n_sequences: int
    n_firing: np.ndarray  # int64 [F]
    sum_activation: np.ndarray  # float64 [F]
    histogram: np.ndarray  # int64 [F, N_FINE_BINS], see histogram.py
    top: SampleSlots
    reservoir: SampleSlots
    pool: SampleSlots
    sequences: Mapping[int, np.ndarray]  # seq_index -> int32 token ids, for every referenced sequence

    @property
    def window_len(self) -> int:
        return self.top.window.shape[2]

    @property
    def top_k(self) -> int:
        return self.top.key.shape[1]

    @property
    def reservoir_size(self) -> int:
        return self.reservoir.key.shape[1]

    @property
    def max_activation(self) -> np.ndarray:
        """Per-feature max: the best top-k entry (0 for dead features)."""
        return self.top.value.max(axis=1) if self.top_k else np.zeros(self.d_sae, np.float32)

    def window_start(self, position: np.ndarray) -> np.ndarray:
        """First position of the window around `position`: shifted, not cut, at the sequence edges."""
        return np.clip(np.asarray(position) - self.window_before, 0, self.context_size - self.window_len)

    # ---- serialization ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A versioned, zlib-compressed blob: JSON header + raw little-endian arrays (no pickle).

        Compact by construction: keys are recomputed on load (they are hashes of seed and position, or
        the value's bits), and each window max is stored XOR the entry's own value, which is zero
        whenever the entry is its window's max (most entries).
        """
        arrays: dict[str, np.ndarray] = {
            "n_firing": self.n_firing,
            "sum_activation": self.sum_activation,
            "histogram": self.histogram,
        }
        for name in _SAMPLES:
            slots: SampleSlots = getattr(self, name)
            arrays[f"{name}.order"] = slots.order
            arrays[f"{name}.value"] = slots.value
            arrays[f"{name}.window"] = slots.window
            arrays[f"{name}.window_max_xor_value"] = slots.window_max.view(np.int32) ^ slots.value.view(np.int32)
        seq_ids = np.array(sorted(self.sequences), dtype=np.int64)
        arrays["sequences.index"] = seq_ids
        arrays["sequences.tokens"] = (
            np.stack([np.asarray(self.sequences[int(i)], dtype=np.int32) for i in seq_ids])
            if seq_ids.size
            else np.zeros((0, self.context_size), dtype=np.int32)
        )
        header = {
            "version": FORMAT_VERSION,
            "meta": {k: getattr(self, k) for k in _META},
            "arrays": [[name, a.dtype.newbyteorder("<").str, list(a.shape)] for name, a in arrays.items()],
        }
        body = b"".join(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes() for a in arrays.values())
        head = json.dumps(header).encode()
        return FORMAT_MAGIC + struct.pack("<I", len(head)) + head + zlib.compress(body, ZLIB_LEVEL)

    @classmethod
    def from_bytes(cls, blob: bytes) -> "ShardSummary":
        if not blob.startswith(FORMAT_MAGIC):
            raise LabelerError("not a shard summary blob (bad magic); it was written by something else")
        (head_len,) = struct.unpack_from("<I", blob, len(FORMAT_MAGIC))
        start = len(FORMAT_MAGIC) + 4
        header = json.loads(blob[start : start + head_len])
        if header["version"] != FORMAT_VERSION:
            raise LabelerError(f"shard summary format {header['version']} is not {FORMAT_VERSION}; re-run the caching stage")
        body = zlib.decompress(blob[start + head_len :])
        arrays: dict[str, np.ndarray] = {}
        offset = 0
        for name, dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            size = int(np.prod(shape)) * dt.itemsize
            arrays[name] = np.frombuffer(body, dtype=dt, count=int(np.prod(shape)), offset=offset).reshape(shape).astype(dt.newbyteorder("="))
            offset += size
        meta = header["meta"]
        slots = {}
        for name in _SAMPLES:
            order, value = arrays[f"{name}.order"], arrays[f"{name}.value"]
            slots[name] = SampleSlots(
                key=rebuild_keys(name, order, value, meta["seed"]),
                order=order,
                value=value,
                window=arrays[f"{name}.window"],
                window_max=(arrays[f"{name}.window_max_xor_value"] ^ value.view(np.int32)).view(np.float32),
            )
        tokens = arrays["sequences.tokens"]
        return cls(
            **meta,
            n_firing=arrays["n_firing"],
            sum_activation=arrays["sum_activation"],
            histogram=arrays["histogram"],
            sequences={int(i): tokens[j] for j, i in enumerate(arrays["sequences.index"])},
            **slots,
        )


_SAMPLES = ("top", "reservoir", "pool")
_META = ("d_sae", "context_size", "window_before", "window_after", "seed", "n_tokens", "n_sequences")


def referenced_sequences(top: SampleSlots, reservoir: SampleSlots, pool: SampleSlots) -> np.ndarray:
    """Sorted unique seq_index of every kept entry."""
    orders = [s.order[s.valid] for s in (top, reservoir, pool)]
    seq, _ = unpack_order(np.concatenate(orders))
    return np.unique(seq)


_MUST_MATCH = ("d_sae", "context_size", "window_before", "window_after", "seed", "top_k", "reservoir_size")


def merge_summaries(summaries: Sequence[ShardSummary]) -> ShardSummary:
    """Exact merge: counts, sums and histograms add; top-k and random-key samples keep the k smallest keys.

    Merging shards gives the same top-k, counts, histograms and samples as one pass over all of them
    (sums up to float rounding). Shards must not overlap (each token counted once) and must share the
    pass settings checked in _MUST_MATCH.
    """
    if not summaries:
        raise ConfigError("merge_summaries needs at least one shard summary")
    first = summaries[0]
    for other in summaries[1:]:
        for name in _MUST_MATCH:
            if getattr(other, name) != getattr(first, name):
                raise ConfigError(
                    f"cannot merge shard summaries with different {name} ({getattr(first, name)} vs {getattr(other, name)}); "
                    "re-run the shards with one job config"
                )
    if len(summaries) == 1:
        return first
    with torch.inference_mode():
        merged = {
            name: SampleSlots.from_table(merge_tables([getattr(s, name).to_table() for s in summaries]))
            for name in _SAMPLES
        }
    sequences: dict[int, np.ndarray] = {}
    for s in summaries:
        sequences.update(s.sequences)
    keep = referenced_sequences(merged["top"], merged["reservoir"], merged["pool"])
    return ShardSummary(
        d_sae=first.d_sae,
        context_size=first.context_size,
        window_before=first.window_before,
        window_after=first.window_after,
        seed=first.seed,
        n_tokens=sum(s.n_tokens for s in summaries),
        n_sequences=sum(s.n_sequences for s in summaries),
        n_firing=np.sum([s.n_firing for s in summaries], axis=0),
        sum_activation=np.sum([s.sum_activation for s in summaries], axis=0),
        histogram=np.sum([s.histogram for s in summaries], axis=0),
        sequences={int(i): sequences[int(i)] for i in keep},
        **merged,
    )
