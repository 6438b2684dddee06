"""Windows as an LLM reads them: running text, active tokens marked, 0-10 values."""

from __future__ import annotations

import numpy as np

from labeler.llm.text import activation_levels, active_token_values, render, token_pieces
from labeler.types import Window


def window(tokens, acts) -> Window:
    acts = np.asarray(acts, dtype=np.uint8)
    return Window("top", 0, 0, 1, 0, np.arange(len(tokens), dtype=np.int32), acts, 0.1, int(acts.argmax()), float(acts.max()) * 0.1, tuple(tokens))


def test_bpe_tokens_keep_their_spaces_and_runs_of_marks_merge():
    tokens = ["The", " big", " red", " dog", "."]
    assert render(tokens, [False, True, True, False, False]) == "The <<big red>> dog."
    assert render(tokens, [True, False, False, False, True]) == "<<The>> big red dog<<.>>"
    assert render(["Ġhello", "Ġworld", "Ċ", "Ġnext"]) == "hello world\\n next"


def test_wordpiece_tokens_join_with_spaces_except_continuations():
    assert token_pieces(["[CLS]", "play", "##ing", "ball"]) == ("[CLS]", " play", "ing", " ball")
    assert render(["play", "##ing", "ball"], [False, True, False]) == "play<<ing>> ball"


def test_activation_levels_are_relative_to_the_feature_max():
    w = window([" a", " b", " c"], [0, 50, 100])  # activations 0, 5, 10 at scale 0.1
    assert activation_levels(w, feature_max=10.0).tolist() == [0, 5, 10]
    assert activation_levels(w, feature_max=20.0).tolist() == [0, 2, 5]
    assert active_token_values(w, 10.0) == "<<b>>=5, <<c>>=10"


def test_odd_characters_inside_tokens_keep_one_piece_per_token():
    assert token_pieces([" a\x00b", " c\r\n"]) == (" a\x00b", " c\\n")
