"""Explainer and scorer windows are disjoint: no scorer judges text the explainer read."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from llm_server import synthetic_feature

from labeler.label import split_examples
from labeler.label.split import window_key


def spans(windows):
    return [(w.seq_index, w.window_start, w.window_start + len(w.token_ids)) for w in windows]


def overlapping(a, b) -> bool:
    return any(s1 == s2 and x1 < y2 and x2 < y1 for s1, x1, y1 in spans(a) for s2, x2, y2 in spans(b))


def test_shown_and_scored_windows_are_disjoint_by_sequence_and_start():
    feature = synthetic_feature(0)
    split = split_examples(feature, n_explain=20, n_score=10)
    shown = {window_key(w) for w in split.shown}
    scored = {window_key(w) for w in split.activating + split.non_activating}
    assert shown and scored and not shown & scored
    assert len(split.shown) == 18  # 10 even-ranked top + 8 even-ranked quantile windows exist
    assert len(split.activating) == 10 and len(split.non_activating) == 10
    assert all(w.kind == "negative" for w in split.non_activating)


def test_both_sides_mix_top_and_every_quantile_bin():
    split = split_examples(synthetic_feature(0, per_quantile=6), n_explain=10, n_score=8)
    assert [w.kind for w in split.shown].count("top") == 5
    assert {w.quantile for w in split.shown if w.kind == "quantile"} == {0, 1, 2, 3}
    assert [w.kind for w in split.activating].count("top") == 4
    assert {w.quantile for w in split.activating if w.kind == "quantile"} == {0, 1, 2, 3}


def test_a_window_sampled_twice_or_overlapping_a_shown_one_is_never_scored():
    feature = synthetic_feature(0)
    top = feature.of_kind("top")
    # quantile windows that repeat the shown top[0] and straddle top[2]: both must stay out of scoring
    twin = dataclasses.replace(top[0], kind="quantile", quantile=1, rank=1)
    straddle = dataclasses.replace(top[2], kind="quantile", quantile=2, rank=3, window_start=top[2].window_start + 5)
    feature = dataclasses.replace(feature, examples=feature.examples + (twin, straddle))
    split = split_examples(feature, n_explain=40, n_score=40)
    assert not overlapping(split.shown, split.activating)
    assert window_key(twin) not in {window_key(w) for w in split.activating}


@settings(max_examples=30, deadline=None)
@given(
    n_top=st.integers(0, 12),
    per_quantile=st.integers(0, 5),
    n_explain=st.integers(1, 30),
    n_score=st.integers(1, 30),
    seed=st.integers(0, 1000),
)
def test_disjoint_and_deterministic_for_any_shape(n_top, per_quantile, n_explain, n_score, seed):
    feature = synthetic_feature(0, n_top=n_top, per_quantile=per_quantile, n_negatives=5, seed=seed, window=8)
    split = split_examples(feature, n_explain=n_explain, n_score=n_score)
    assert split == split_examples(feature, n_explain=n_explain, n_score=n_score)
    assert not overlapping(split.shown, split.activating + split.non_activating)
    assert len(split.shown) <= n_explain and len(split.activating) <= n_score
    assert len({window_key(w) for w in split.shown}) == len(split.shown)
