"""Tokenize a text source into full-length sequences: [start token] + packed document tokens.

Packing (documents joined by the model's separator, no padding) keeps every position a real token, so
the activation pass needs no attention mask and every token counts. The tail that does not fill a
whole sequence is dropped, as sae_lens does, and n_tokens says exactly what was kept.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from labeler.errors import DatasetError
from labeler.sources import builtin_corpus
from labeler.sources.model import LoadedModel
from labeler.sources.readers import Piece, iter_pieces

_TOKENIZE_BATCH_CHARS = 262_144  # text handed to the (Rust) tokenizer per call: fast, bounded memory


@dataclass(frozen=True)
class TokenizedDataset:
    """Token ids [n_sequences, context_size], each row starting with the model's BOS/CLS token."""

    name: str
    source: str
    tokenizer_name: str
    context_size: int
    tokens: torch.Tensor
    content_hash: str

    @property
    def n_sequences(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.numel())

    def shard(self, index: int, n_shards: int) -> tuple[int, int]:
        """[seq_start, seq_stop) of shard `index` of `n_shards`: contiguous, covering all, sizes within 1."""
        if n_shards < 1 or not 0 <= index < n_shards:
            raise ValueError(f"shard index {index} out of range for {n_shards} shards")
        return self.n_sequences * index // n_shards, self.n_sequences * (index + 1) // n_shards

    def store_fields(self) -> dict:
        """Keyword arguments for `labeler.store.sources.upsert_dataset`."""
        return {
            "name": self.name, "source": self.source, "tokenizer": self.tokenizer_name,
            "context_size": self.context_size, "n_sequences": self.n_sequences, "n_tokens": self.n_tokens,
            "content_hash": self.content_hash,
        }


def load_dataset(spec: str, model: LoadedModel, *, context_size: int = 128, n_tokens: int | None = None,
                 text_field: str = "text") -> TokenizedDataset:
    """Read `spec` streaming until `n_tokens` (rounded up to whole sequences), or to its end if None.

    spec: "builtin" / "builtin:python-docs" (offline corpus), a local .txt / .jsonl / .parquet file or a
    folder of them, or "hf:NAME[:split]" / any other name for a streamed Hugging Face dataset.
    """
    start = model.start_token_id()
    n_text = context_size - (1 if start is not None else 0)
    if n_text < 1:
        raise DatasetError(f"context size {context_size} leaves no room for text after the start token")
    if n_tokens is not None and n_tokens < 1:
        raise DatasetError(f"n_tokens must be positive, got {n_tokens}")
    max_sequences = math.ceil(n_tokens / context_size) if n_tokens is not None else None
    stream = _token_stream(iter_pieces(spec, text_field=text_field), model.tokenizer, model.separator_token_id())
    rows, n_read = _pack(stream, n_text, max_sequences)
    if n_read == 0:
        raise DatasetError(f"empty dataset: {spec} yields no tokens")
    if not rows:
        raise DatasetError(
            f"dataset {spec} yields only {n_read} tokens, fewer than one sequence of {context_size}; "
            "add text or lower the context size"
        )
    body = torch.tensor(np.stack(rows), dtype=torch.long)
    if start is not None:
        body = torch.cat([torch.full((body.shape[0], 1), start, dtype=torch.long), body], dim=1)
    return TokenizedDataset(
        name=_display_name(spec), source=_source_of(spec), tokenizer_name=model.tokenizer_name,
        context_size=context_size, tokens=body,
        content_hash=content_hash(body, model.tokenizer_name, context_size),
    )


def content_hash(tokens: torch.Tensor, tokenizer_name: str, context_size: int) -> str:
    digest = hashlib.sha256(f"{tokenizer_name}\n{context_size}\n".encode())
    digest.update(tokens.to(torch.int32).numpy().astype("<i4").tobytes())
    return digest.hexdigest()


def _token_stream(pieces: Iterator[Piece], tokenizer, separator: int | None) -> Iterator[np.ndarray]:
    """Token ids of consecutive pieces, with a separator between documents (none before the first)."""
    previous_ended = False
    for batch in _batches(pieces):
        encoded = tokenizer([text for text, _ in batch], add_special_tokens=False, verbose=False)["input_ids"]
        for ids, (_, ends_document) in zip(encoded, batch):
            if not ids:  # whitespace-only text: nothing to add, but a document may still end here
                previous_ended = previous_ended or ends_document
                continue
            if previous_ended and separator is not None:
                yield np.array([separator], dtype=np.int64)
            yield np.asarray(ids, dtype=np.int64)
            previous_ended = ends_document


def _batches(pieces: Iterator[Piece]) -> Iterator[list[Piece]]:
    batch: list[Piece] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece[0])
        if size >= _TOKENIZE_BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _pack(stream: Iterator[np.ndarray], n_text: int, max_sequences: int | None) -> tuple[list[np.ndarray], int]:
    """Cut the stream into rows of n_text tokens; returns the rows and how many tokens were read."""
    rows: list[np.ndarray] = []
    buffer: list[np.ndarray] = []
    buffered = 0
    n_read = 0
    for ids in stream:
        n_read += len(ids)
        buffer.append(ids)
        buffered += len(ids)
        if buffered < n_text:
            continue
        flat = np.concatenate(buffer)
        n_full = len(flat) // n_text
        if max_sequences is not None:
            n_full = min(n_full, max_sequences - len(rows))
        rows.extend(flat[: n_full * n_text].reshape(n_full, n_text))
        rest = flat[n_full * n_text:]
        buffer, buffered = [rest], len(rest)
        if max_sequences is not None and len(rows) >= max_sequences:
            break
    return rows, n_read


def _display_name(spec: str) -> str:
    if spec in builtin_corpus.BUILTIN_ALIASES:
        return builtin_corpus.BUILTIN_NAME
    if spec.startswith("hf:"):
        return spec
    path = Path(spec).expanduser()
    return path.name if path.exists() else spec


def _source_of(spec: str) -> str:
    if spec in builtin_corpus.BUILTIN_ALIASES:
        return builtin_corpus.BUILTIN_NAME
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec
