"""A fixed histogram grid read straight from float32 bits, so shard histograms add up exactly.

Fine grid: 8 bins per octave from 2**-16 to 2**16 (the float32 exponent and the top 3 mantissa bits,
i.e. `bits >> 20`), plus an underflow bin (0, 2**-16) and an overflow bin [2**16, inf). The edges are
exact powers-of-two fractions, identical on every device and independent of the data, so a shard's
counts merge by addition. A bin is 6-12 % wide: fine enough for any feature whose range spans more than a
few percent. Per feature, `coarse_histogram` groups runs of fine bins over the feature's own range into
at most `histogram_bins` bins (still exact: it only adds counts).
"""

from __future__ import annotations

import numpy as np
import torch

BINS_PER_OCTAVE = 8
LOW_EXPONENT = -16
HIGH_EXPONENT = 16
_FIRST_CODE = (127 + LOW_EXPONENT) * BINS_PER_OCTAVE  # (bits >> 20) of 2**-16
_N_INNER = (HIGH_EXPONENT - LOW_EXPONENT) * BINS_PER_OCTAVE
N_FINE_BINS = _N_INNER + 2  # underflow, inner bins, overflow


def fine_codes(values: torch.Tensor) -> torch.Tensor:
    """Fine bin (int64) of each positive float32 value: 0 underflow, 1.._N_INNER inner, _N_INNER+1 overflow."""
    bits = values.to(torch.float32).view(torch.int32) >> 20
    return (bits.to(torch.int64) - (_FIRST_CODE - 1)).clamp_(0, N_FINE_BINS - 1)


def fine_lower_edges() -> np.ndarray:
    """Lower edge of every fine bin (float64, exact); the underflow bin starts at 0."""
    u = np.arange(_FIRST_CODE, _FIRST_CODE + _N_INNER + 1)  # inner bins and the overflow bin's lower edge
    inner = np.ldexp(1.0 + (u % BINS_PER_OCTAVE) / BINS_PER_OCTAVE, u // BINS_PER_OCTAVE - 127)
    return np.concatenate([[0.0], inner])


_LOWER = fine_lower_edges()


def coarse_histogram(fine_counts: np.ndarray, max_activation: float, n_bins: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Edges and counts of at most `n_bins` bins covering the feature's non-empty fine bins.

    Groups of equal numbers of consecutive fine bins, so each coarse bin is an exact sum; the last edge is
    the feature's max (the overflow bin has no finite upper edge). Empty input gives empty tuples.
    """
    nonzero = np.flatnonzero(fine_counts)
    if nonzero.size == 0:
        return (), ()
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    group = -(-(hi - lo + 1) // n_bins)
    starts = np.arange(lo, hi + 1, group)
    counts = np.add.reduceat(fine_counts[lo : hi + 1], starts - lo)
    stops = np.minimum(starts + group, hi + 1)
    uppers = _LOWER[np.minimum(stops, N_FINE_BINS - 1)]
    if hi == N_FINE_BINS - 1:  # the overflow bin has no finite upper edge: close it at the max
        uppers[-1] = max_activation
    return (float(_LOWER[lo]), *uppers.tolist()), tuple(counts.tolist())
