"""The plain metrics behind the scorers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeler.score.metrics import auroc, balanced_accuracy, pearson


def test_balanced_accuracy_is_chance_for_a_constant_guess_whatever_the_balance():
    truth = [1, 1, 1, 1, 0]
    assert balanced_accuracy(truth, [1, 1, 1, 1, 1]) == 0.5
    assert balanced_accuracy(truth, [1, 1, 0, 0, 0]) == 0.75
    with pytest.raises(ValueError, match="both classes"):
        balanced_accuracy([1, 1], [1, 0])


def test_auroc_counts_ties_as_half():
    assert auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0]) == 0.5
    assert auroc([0.9, 0.3, 0.5, 0.1], [1, 1, 0, 0]) == 0.75


def test_pearson_is_undefined_for_constants():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([0, 0, 0], [1, 2, 3]) is None


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auroc_equals_the_pairwise_definition(pairs):
    scores = [float(s) for s, _ in pairs]
    truth = [int(t) for _, t in pairs]
    pos = [s for s, t in zip(scores, truth) if t]
    neg = [s for s, t in zip(scores, truth) if not t]
    if not pos or not neg:
        return
    pairwise = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))
    assert auroc(scores, truth) == pytest.approx(pairwise)
