"""Plain metrics the scorers report: balanced accuracy, AUROC (Mann-Whitney), Pearson correlation."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def balanced_accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean of the true-positive and true-negative rates: 0.5 is chance whatever the class balance."""
    n_pos = sum(1 for t in truth if t)
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("balanced accuracy needs both classes in the truth")
    tpr, tnr = true_rates(truth, predicted)
    return (tpr + tnr) / 2


def true_rates(truth: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """(true-positive rate, true-negative rate); plain Python: the lists are a few dozen long."""
    tp = sum(1 for t, p in zip(truth, predicted) if t and p)
    tn = sum(1 for t, p in zip(truth, predicted) if not t and not p)
    n_pos = sum(1 for t in truth if t)
    n_neg = len(truth) - n_pos
    return tp / max(1, n_pos), tn / max(1, n_neg)


def auroc(scores: Sequence[float], truth: Sequence[int]) -> float:
    """P(score of a positive > score of a negative), ties counting one half (rank form of Mann-Whitney U)."""
    n_pos = sum(1 for t in truth if t)
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both classes in the truth")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    start = 0
    while start < len(order):  # tied scores share the mean of the ranks they span
        stop = start
        while stop + 1 < len(order) and scores[order[stop + 1]] == scores[order[start]]:
            stop += 1
        mean_rank = (start + stop) / 2 + 1
        rank_sum += mean_rank * sum(1 for i in order[start : stop + 1] if truth[i])
        start = stop + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when either side is constant (the correlation is undefined)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if len(a) == 0 or (a == a[0]).all() or (b == b[0]).all():  # exact test: centring leaves rounding noise
        return None
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    if denom == 0:
        return None
    return float((a * b).sum() / denom)
