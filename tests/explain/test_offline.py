"""Offline explainer: finds what a feature fires on from token lift, with no LLM, deterministically."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
from pydoc_data.topics import topics

from labeler.embed import load_encoder
from labeler.errors import ExplanationParseError
from labeler.explain.offline import OfflineExplainer, rank_terms, top_terms
from labeler.types import FeatureExamples, FeatureStats, Window

WINDOW = 32


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Word pieces of Python's own documentation (stdlib, nothing to install)."""
    tokenizer = load_encoder().tokenizer
    text = " ".join(topics[k] for k in sorted(topics))[:60_000]
    return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_window(tokens, active: set[int], *, kind: str = "top", rank: int = 0, peak: int | None = None) -> Window:
    acts = np.zeros(len(tokens), dtype=np.uint8)
    for i in active:
        acts[i] = 120
    if peak is not None:
        acts[peak] = 255
    return Window(
        kind=kind, quantile=0, rank=rank, seq_index=rank, window_start=0,
        token_ids=np.arange(len(tokens), dtype=np.int32), activations_q=acts, scale=0.01,
        max_position=int(acts.argmax()), max_activation=float(acts.max()) * 0.01, token_strs=tuple(tokens),
    )


def feature_of(shown) -> FeatureExamples:
    stats = FeatureStats(feature_index=11, n_tokens=100_000, n_firing=300, max_activation=2.55,
                         sum_activation=400.0, histogram_edges=(), histogram_counts=())
    return FeatureExamples(sae_id=1, feature_index=11, stats=stats, examples=tuple(shown))


def planted_windows(corpus, word: str, n: int = 16, seed: int = 0, extra_active=()) -> list[Window]:
    """Random corpus windows with `word` planted once; the feature fires on it (and on `extra_active` tokens)."""
    rng = random.Random(seed)
    windows = []
    for rank in range(n):
        start = rng.randrange(0, len(corpus) - WINDOW)
        tokens = ["[CLS]", *corpus[start : start + WINDOW - 1]]
        at = rng.randrange(4, WINDOW - 2)
        tokens[at] = word
        active = {i for i, t in enumerate(tokens) if t in extra_active}
        windows.append(make_window(tokens, active, rank=rank, peak=at))
    return windows


def test_finds_the_planted_token(corpus):
    shown = planted_windows(corpus, "walrus")
    candidates = OfflineExplainer().explain_now(feature_of(shown), shown, 3)
    assert 1 <= len(candidates) <= 3
    assert "walrus" in candidates[0].text
    assert {(c.source, c.method, c.model) for c in candidates} == {("offline", "token-lift", "")}
    assert all(c.feature_index == 11 for c in candidates)
    assert len({c.text for c in candidates}) == len(candidates)


def test_is_deterministic_and_async(corpus):
    shown = planted_windows(corpus, "walrus", seed=3)
    first = OfflineExplainer().explain_now(feature_of(shown), shown, 4)
    again = asyncio.run(OfflineExplainer().explain(feature_of(shown), shown, 4))
    assert first == again


def test_several_firing_tokens_are_named_together(corpus):
    rng = random.Random(7)
    shown = [w for seed, word in enumerate(["walrus", "penguin"] * 8) for w in planted_windows(corpus, word, 1, seed)]
    rng.shuffle(shown)
    terms = [t.text for t in top_terms(rank_terms(shown))]
    assert set(terms[:2]) == {"walrus", "penguin"}
    texts = [c.text for c in OfflineExplainer().explain_now(feature_of(shown), shown, 5)]
    assert any("walrus" in t and "penguin" in t for t in texts)


def test_special_tokens_and_punctuation_never_outrank_a_word(corpus):
    shown = planted_windows(corpus, "walrus", extra_active={"[CLS]", ",", "."})
    terms = top_terms(rank_terms(shown))
    assert terms[0].text == "walrus"
    assert all("[CLS]" not in t.text and t.text not in {",", "."} for t in terms)


def test_punctuation_is_named_when_it_is_all_that_fires(corpus):
    shown = []
    for rank in range(12):
        tokens = ["[CLS]", *corpus[rank * 40 : rank * 40 + WINDOW - 1]]
        if "(" not in tokens:
            tokens[10] = "("
        shown.append(make_window(tokens, {i for i, t in enumerate(tokens) if t == "("}, rank=rank))
    candidates = OfflineExplainer().explain_now(feature_of(shown), shown, 2)
    assert "'('" in candidates[0].text


def test_word_pieces_are_read_as_the_word(corpus):
    """The feature fires on '##ning' of 'running': the label says 'running', not 'ning'."""
    shown = planted_windows(corpus, "run", seed=5)
    shown = [
        make_window([*w.token_strs[: w.max_position + 1], "##ning", *w.token_strs[w.max_position + 1 :]],
                    set(), rank=w.rank, peak=w.max_position + 1)
        for w in shown
    ]
    assert top_terms(rank_terms(shown))[0].text == "running"


def test_frequent_terms_beat_rare_ones_thanks_to_smoothing():
    common = [make_window(["the", "walrus", "swims", "home"], {1}, rank=i) for i in range(10)]
    rare = [make_window(["a", "narwhal", "dives", "deep"], {1}, rank=10)]
    background = [make_window(["the", "walrus", "sleeps", "here"], set(), kind="negative", rank=11)]
    terms = {t.text: t for t in rank_terms(common + rare + background)}
    walrus, narwhal = terms["walrus"], terms["narwhal"]
    assert walrus.background_count == 1 and narwhal.background_count == 0
    assert walrus.score > 3 * narwhal.score


def test_shown_negative_windows_count_as_background(corpus):
    """'the' fires too, but it is common in the negatives: its lift drops and the planted word leads."""
    shown = planted_windows(corpus, "walrus", extra_active={"the"})
    negatives = [make_window(["[CLS]", *corpus[i : i + WINDOW - 1]], set(), kind="negative", rank=i)
                 for i in range(0, 4000, 200)]
    alone = {t.text: t for t in rank_terms(shown)}
    with_negatives = {t.text: t for t in rank_terms(shown + negatives)}
    assert with_negatives["the"].background_count > alone.get("the", with_negatives["the"]).background_count
    assert with_negatives["the"].lift < alone["the"].lift
    assert top_terms(list(with_negatives.values()))[0].text == "walrus"


def test_nothing_active_is_an_explanation_error(corpus):
    shown = [make_window(["[CLS]", *corpus[:WINDOW]], set(), rank=0)]
    with pytest.raises(ExplanationParseError, match="no active token|none of the"):
        OfflineExplainer().explain_now(feature_of(shown), shown, 1)


def test_only_special_tokens_active_is_an_explanation_error(corpus):
    shown = [make_window(["[CLS]", *corpus[:WINDOW]], {0}, rank=0)]
    with pytest.raises(ExplanationParseError, match="special tokens"):
        OfflineExplainer().explain_now(feature_of(shown), shown, 1)
