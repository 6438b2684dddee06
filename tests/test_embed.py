"""MiniLM embeddings offline, and token strings decoded into the text they stand for."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from labeler.embed import (
    EMBEDDING_DIM,
    clear_embedding_cache,
    cosine_matrix,
    embed_texts,
    is_special_token,
    tokens_to_text,
)
from labeler.errors import ConfigError


def test_embeddings_are_unit_vectors_in_input_order():
    texts = ["def parse(text): return text.split()", "A cat sat on the mat.", "def main(): pass"]
    vectors = embed_texts(texts)
    assert vectors.shape == (3, EMBEDDING_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = cosine_matrix(vectors, vectors)
    assert sims[0, 2] > sims[0, 1] + 0.2  # two Python definitions are closer than code and a cat


def test_batching_padding_and_the_cache_do_not_change_a_vector():
    clear_embedding_cache()
    short, long = "the token 'def'", " ".join(["a much longer sentence about parsing Python source code"] * 6)
    alone = embed_texts([short])[0]
    clear_embedding_cache()
    in_batch = embed_texts([long, short, long], batch_size=2)
    np.testing.assert_allclose(in_batch[1], alone, atol=1e-5)
    np.testing.assert_array_equal(in_batch[0], in_batch[2])
    np.testing.assert_array_equal(embed_texts([short])[0], in_batch[1])  # served from the cache


def test_empty_input_and_misuse():
    assert embed_texts([]).shape == (0, EMBEDDING_DIM)
    with pytest.raises(ConfigError, match="sequence of texts"):
        embed_texts("one string")
    with pytest.raises(ConfigError, match="width"):
        cosine_matrix(np.ones((2, 3)), np.ones((2, 4)))


def test_cosine_matrix_normalises_any_vectors():
    a = np.array([[3.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [5.0, 0.0]])
    np.testing.assert_allclose(cosine_matrix(a, b), [[0.0, 1.0], [2**-0.5, 2**-0.5]], atol=1e-6)


def test_model_loads_with_the_hub_offline():
    """A fresh process with HF_HUB_OFFLINE=1 embeds from the packaged files alone."""
    code = "from labeler.embed import embed_texts; v = embed_texts(['offline']); print(v.shape)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1, 384)"


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        (["[CLS]", "def", "run", "##ning", "(", "x", ")", ":", "[SEP]", "[PAD]"], "def running ( x ) :"),
        (["<|endoftext|>", "def", "Ġfoo", "(", "x", "):", "Ċ", "ĠĠĠ", "Ġreturn"], "def foo(x):\n    return"),
        (["<s>", "▁Hello", "▁wor", "ld", "</s>"], "Hello world"),
        ([" the", " cat", " sat", "."], "the cat sat."),
    ],
    ids=["wordpiece", "byte-level-bpe", "sentencepiece", "decoded"],
)
def test_tokens_to_text_joins_pieces_of_each_tokenizer_family(tokens, text):
    assert tokens_to_text(tokens) == text


def test_special_tokens():
    assert all(map(is_special_token, ["[CLS]", "[SEP]", "[PAD]", "<|endoftext|>", "<s>", "</s>", "<pad>"]))
    assert not any(map(is_special_token, ["cls", "[", "<", "def", "<div>"]))
