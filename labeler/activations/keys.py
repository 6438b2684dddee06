"""Deterministic random keys, so every sample is a pure function of (seed, sequence, position, feature).

A random-key sample ("keep the R smallest keys", A-Res with uniform weights) is uniform, and merging two
samples is keeping the R smallest keys of their union: shard-then-merge gives *exactly* the one-pass sample.
Keys are hashes, not draws from a generator, so they do not depend on batching, sharding or device.

Key layout: a rank key is < 2**KEY_BITS, and `feature << KEY_BITS | key` still fits in int64 for up to
2**FEATURE_BITS features, so one integer sorts (feature, key) in a single pass.
"""

from __future__ import annotations

import numpy as np

KEY_BITS = 43
FEATURE_BITS = 20
MAX_FEATURES = 1 << FEATURE_BITS
EMPTY_KEY = (1 << KEY_BITS) - 1  # an empty slot sorts after every real key
EMPTY_ORDER = np.iinfo(np.int64).max
POSITION_BITS = 16  # order = seq_index << 16 | position; context_size <= 8192 fits

_SALT_RESERVOIR = 0x5EED_0001
_SALT_POOL = 0x5EED_0002
_SALT_FEATURE = 0x5EED_0003
_SALT_NEGATIVE = 0x5EED_0004
_SALT_QUANTILE = 0x5EED_0005

_U64 = np.uint64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer on uint64 (wrapping arithmetic is well defined for numpy unsigned ints)."""
    x = np.asarray(x, dtype=_U64)
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _to_key(h: np.ndarray) -> np.ndarray:
    """Top KEY_BITS bits of a hash, kept below EMPTY_KEY."""
    return np.minimum(h >> _U64(64 - KEY_BITS), _U64(EMPTY_KEY - 1)).astype(np.int64)


def _seeded(seed: int, salt: int) -> np.uint64:
    return splitmix64(np.array([(seed * 0x100000001B3 + salt) & 0xFFFFFFFFFFFFFFFF], dtype=_U64))[0]


def pack_order(seq_index: np.ndarray, position: np.ndarray) -> np.ndarray:
    """One int64 per token that sorts like (seq_index, position): the tie-break everywhere."""
    return (np.asarray(seq_index, dtype=np.int64) << POSITION_BITS) | np.asarray(position, dtype=np.int64)


def unpack_order(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.asarray(order, dtype=np.int64)
    return order >> POSITION_BITS, order & ((1 << POSITION_BITS) - 1)


def token_keys(order: np.ndarray, seed: int, *, purpose: str) -> np.ndarray:
    """A KEY_BITS random key per token (by its packed order); `purpose` 'reservoir' or 'pool' decorrelates the two."""
    salt = {"reservoir": _SALT_RESERVOIR, "pool": _SALT_POOL}[purpose]
    return _to_key(splitmix64(np.asarray(order, dtype=np.int64).view(_U64) ^ _seeded(seed, salt)))


def feature_salts(n_features: int, seed: int) -> np.ndarray:
    """Per-feature XOR salts: feature f's reservoir key of token t is token_key(t) ^ salt(f).

    XOR with a constant permutes uniform keys, so each feature's sample stays uniform, while different
    salts make different features prefer different tokens (one shared key would pick the same "lucky"
    tokens for every feature). Costs one gather and one XOR per non-zero instead of a hash.
    """
    salts = _to_key(splitmix64(np.arange(n_features, dtype=_U64) ^ _seeded(seed, _SALT_FEATURE)))
    return np.minimum(salts, EMPTY_KEY - 1)


def selection_salts(n_features: int, seed: int, *, purpose: str) -> np.ndarray:
    """uint64 per feature for choosing among kept entries ('quantile' picks, 'negative' order) at selection time."""
    salt = {"quantile": _SALT_QUANTILE, "negative": _SALT_NEGATIVE}[purpose]
    return splitmix64(np.arange(n_features, dtype=_U64) ^ _seeded(seed, salt))


INVERTED_VALUE_BITS = 0x7FFFFFFF


def value_keys(value: np.ndarray) -> np.ndarray:
    """Top-k rank key of positive float32 activations: smaller key = larger activation (bits are monotone)."""
    return INVERTED_VALUE_BITS - np.asarray(value, dtype=np.float32).view(np.int32).astype(np.int64)


def reservoir_keys(order: np.ndarray, seed: int) -> np.ndarray:
    """Reservoir keys of entries [F, k] from their packed orders, exactly as the pass computed them."""
    salts = feature_salts(order.shape[0], seed)[:, None]
    return np.minimum(token_keys(order, seed, purpose="reservoir") ^ salts, EMPTY_KEY - 1)


def rebuild_keys(kind: str, order: np.ndarray, value: np.ndarray, seed: int) -> np.ndarray:
    """Keys are a function of (kind, seed, order, value), so blobs need not carry them; empty slots get EMPTY_KEY."""
    if kind == "top":
        keys = value_keys(value)
    elif kind == "reservoir":
        keys = reservoir_keys(order, seed)
    else:
        keys = token_keys(order, seed, purpose="pool")
    return np.where(order == EMPTY_ORDER, EMPTY_KEY, keys)
