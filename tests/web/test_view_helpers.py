"""Pure helpers behind the pages: token placement and colour, chart geometry, password and token hashing."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.store.review import StoredExample
from labeler.types import Window
from labeler.web.charts import density_gauge, histogram_chart
from labeler.web.contexts import activation_level, example_context, group_examples, try_tokens
from labeler.web.security import hash_password, session_tag, tokens_match, verify_password


def stored(kind="top", quantile=0, peak_value=200, context=("a", "b", "c", "d", "e", "f"), window=("c", "d", "e")):
    q = np.array([0, peak_value, 10], dtype=np.uint8)
    w = Window(kind, quantile, 0, 7, 2, np.arange(3, dtype=np.int32), q, 0.01, 3, float(q.max()) * 0.01, tuple(window))
    return StoredExample(w, None if context is None else tuple(context))


def test_activation_levels():
    assert activation_level(0.0, 5.0) == 0
    assert activation_level(1e-6, 5.0) == 1, "the faintest firing token is still coloured"
    assert activation_level(5.0, 5.0) == 10 and activation_level(9.0, 5.0) == 10
    assert activation_level(2.5, 5.0) == 5


def test_window_is_placed_on_its_whole_sequence():
    ctx = example_context(stored(), feature_max=2.0)
    assert ctx.full_context and [t.text for t in ctx.tokens] == list("abcdef")
    assert [t.activation for t in ctx.tokens] == [None, None, 0.0, 2.0, 0.1, None]
    assert [t.is_max for t in ctx.tokens] == [False, False, False, True, False, False]
    assert ctx.tokens[0].title.startswith("outside the captured window")
    assert ctx.tokens[3].title == "2.000" and ctx.tokens[3].level == 10


def test_a_sequence_that_disagrees_with_the_window_is_not_used():
    ctx = example_context(stored(context=("a", "b", "X", "d", "e", "f")), feature_max=2.0)
    assert not ctx.full_context and [t.text for t in ctx.tokens] == ["c", "d", "e"]
    assert not example_context(stored(context=None), feature_max=2.0).full_context


def test_groups_read_strongest_first_whatever_the_bin_numbers():
    examples = [stored("negative", peak_value=0), stored("quantile", 0, 50), stored("quantile", 1, 150), stored("top")]
    groups = group_examples(examples, feature_max=2.0)
    assert [g.key for g in groups] == ["top", "quantile-1", "quantile-0", "negative"]
    assert groups[1].title == "Quantile bin 1 (max 1.5)"


def test_try_tokens_share_the_feature_scale():
    tokens = try_tokens([("hi", 0.0), ("there", 1.0), ("!", 4.0)], feature_max=4.0)
    assert [t.level for t in tokens] == [0, 3, 10] and [t.is_max for t in tokens] == [False, False, True]


def test_histogram_geometry():
    assert histogram_chart((), ()) is None and histogram_chart((0, 1), (0,)) is None
    chart = histogram_chart((0.0, 1.0, 2.0, 3.0), (1000, 10, 0), width=300, height=120)
    assert [b.x for b in chart.bars] == [0, 100, 200]
    assert chart.bars[0].height == chart.plot_height and chart.bars[2].height == 0
    assert 0 < chart.bars[1].height < chart.plot_height / 2, "log scale: 10 of 1000 is still visible"
    assert chart.bars[1].title == "1 to 2: 10 tokens"


def test_density_gauge():
    assert density_gauge(1.0, width=700).marker_x == 700
    assert density_gauge(1e-4, width=700).marker_x == pytest.approx(300)
    assert density_gauge(0.0).text == "never fires" and density_gauge(0.0).marker_x == 0


def test_password_hashes_are_salted_and_checked():
    first, second = hash_password("hunter2-hunter2"), hash_password("hunter2-hunter2")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("hunter2-hunter2", first) and not verify_password("hunter3-hunter3", first)
    assert not verify_password("x", "not-a-hash") and not verify_password("x", "scrypt$1$2$3$@@$@@")


def test_token_comparison_and_session_tags():
    assert tokens_match("abc", "abc") and not tokens_match("abc", "abd")
    assert not tokens_match(None, None) and not tokens_match("", "")
    assert session_tag("k", "hash-1") != session_tag("k", "hash-2") != session_tag("other", "hash-2")
