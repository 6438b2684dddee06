"""Embedding scorer: AUROC of MiniLM similarity between a label and activating vs non-activating windows."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.embed import load_encoder
from labeler.errors import ConfigError
from labeler.score.embedding import EmbeddingScorer, auroc
from labeler.types import FeatureExamples, FeatureStats, Window

WITH_DEF = [
    "def add(a, b): return a + b",
    "def main(): print('hello')",
    "def helper(self, value): self.value = value",
    "def parse(text): return text.split()",
    "def run(): yield 1",
    "def __init__(self): super().__init__()",
    "def area(r): return 3.14 * r * r",
    "def close(self): self.file.close()",
]
WITHOUT_DEF = [
    "x = [i for i in range(10)]",
    "import os, sys",
    "if x > 3: y = 2",
    "for k in keys: del d[k]",
    "while True: break",
    "print(total / count)",
    "with open(path) as f: data = f.read()",
    "value = mapping.get(key, None)",
]


def window(text: str, *, kind: str, rank: int, target: str = "def") -> Window:
    tokenizer = load_encoder().tokenizer
    strs = tuple(tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]))
    acts = np.array([200 if s == target and kind != "negative" else 0 for s in strs], dtype=np.uint8)
    return Window(
        kind=kind, quantile=0, rank=rank, seq_index=rank, window_start=0,
        token_ids=np.arange(len(strs), dtype=np.int32), activations_q=acts, scale=0.01,
        max_position=int(acts.argmax()), max_activation=float(acts.max()) * 0.01, token_strs=strs,
    )


@pytest.fixture(scope="module")
def def_feature() -> tuple[FeatureExamples, list[Window], list[Window]]:
    activating = [window(t, kind="top", rank=i) for i, t in enumerate(WITH_DEF)]
    negatives = [window(t, kind="negative", rank=i) for i, t in enumerate(WITHOUT_DEF)]
    stats = FeatureStats(feature_index=3, n_tokens=10_000, n_firing=40, max_activation=2.0, sum_activation=50.0,
                         histogram_edges=(), histogram_counts=())
    return FeatureExamples(sae_id=1, feature_index=3, stats=stats, examples=tuple(activating + negatives)), activating, negatives


def test_a_fitting_label_separates_the_windows(def_feature):
    feature, activating, negatives = def_feature
    result = asyncio.run(EmbeddingScorer().score("python keyword def", feature, activating, negatives))
    assert result.method == "embedding" and result.scorer_model == "all-MiniLM-L6-v2"
    assert result.value is not None and result.value >= 0.9
    assert result.n_examples == 16
    d = result.details
    assert d["n_activating"] == 8 and d["n_non_activating"] == 8
    assert d["mean_similarity_activating"] > d["mean_similarity_non_activating"]


def test_an_unrelated_label_is_not_rewarded(def_feature):
    feature, activating, negatives = def_feature
    fitting = EmbeddingScorer().score_now("python keyword def", feature, activating, negatives)
    unrelated = EmbeddingScorer().score_now("recipes for baking sourdough bread", feature, activating, negatives)
    assert unrelated.value <= 0.6 and fitting.value - unrelated.value >= 0.4
    d = unrelated.details
    assert abs(d["mean_similarity_activating"]) < 0.1 and abs(d["mean_similarity_non_activating"]) < 0.1


@pytest.mark.parametrize("label", ["python keyword def", "recipes for baking sourdough bread"])
def test_chance_when_the_windows_do_not_differ_in_what_the_label_names(def_feature, label):
    """Both classes hold the same mix of def / no-def windows: no label can separate them."""
    feature, activating, negatives = def_feature
    mixed_a = activating[0::2] + negatives[0::2]
    mixed_b = activating[1::2] + negatives[1::2]
    result = EmbeddingScorer().score_now(label, feature, mixed_a, mixed_b)
    assert 0.3 <= result.value <= 0.7


def test_skips_with_a_reason_when_a_class_is_missing(def_feature):
    feature, activating, _ = def_feature
    result = EmbeddingScorer().score_now("python keyword def", feature, activating, [])
    assert result.value is None
    assert result.details["skipped"] == "no non-activating windows to compare with"
    assert result.details["n_activating"] == 8


def test_windows_need_token_strings(def_feature):
    feature, activating, negatives = def_feature
    bare = Window(**{**activating[0].__dict__, "token_strs": None})
    with pytest.raises(ConfigError, match="tokenizer"):
        EmbeddingScorer().score_now("python keyword def", feature, [bare], negatives)


def brute_force_auroc(pos, neg) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_known_values():
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9, 0.8]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5
    assert auroc([0.3, 0.7], [0.3, 0.1]) == pytest.approx(0.875)  # one tie counts one half
    with pytest.raises(ValueError):
        auroc([], [0.1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=12),
    st.lists(st.integers(0, 6), min_size=1, max_size=12),
)
def test_auroc_equals_pair_counting_with_ties(pos, neg):
    assert auroc(pos, neg) == pytest.approx(brute_force_auroc(pos, neg))
