"""Plain metrics the scorers report: balanced accuracy, AUROC (Mann-Whitney), Pearson correlation."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def balanced_accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean of the true-positive and true-negative rates: 0.5 is chance whatever the class balance."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    if t.all() or not t.any():
        raise ValueError("balanced accuracy needs both classes in the truth")
    return float(((p & t).sum() / t.sum() + (~p & ~t).sum() / (~t).sum()) / 2)


def true_rates(truth: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    return float((p & t).sum() / max(1, t.sum())), float((~p & ~t).sum() / max(1, (~t).sum()))


def auroc(scores: Sequence[float], truth: Sequence[int]) -> float:
    """P(score of a positive > score of a negative), ties counting one half (rank form of Mann-Whitney U)."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both classes in the truth")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when either side is constant (the correlation is undefined)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    if denom == 0:
        return None
    return float((a * b).sum() / denom)
