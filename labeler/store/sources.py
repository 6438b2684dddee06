"""Rows for SAEs, datasets, vocabularies and full sequences."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labeler.store.models import SAE, Dataset, Sequence, Vocab
from labeler.store.upsert import upsert_rows


def upsert_sae(session: Session, **fields) -> int:
    """Insert or update an SAE row keyed by (checksum, hook_name); returns its id."""
    upsert_rows(session, SAE.__table__, [fields], keys=("checksum", "hook_name"))
    return session.scalar(
        select(SAE.id).where(SAE.checksum == fields["checksum"], SAE.hook_name == fields["hook_name"])
    )


def upsert_dataset(session: Session, **fields) -> int:
    """Insert or update a dataset row keyed by (content_hash, tokenizer, context_size); returns its id."""
    keys = ("content_hash", "tokenizer", "context_size")
    upsert_rows(session, Dataset.__table__, [fields], keys=keys)
    return session.scalar(select(Dataset.id).where(*(getattr(Dataset, k) == fields[k] for k in keys)))


def upsert_vocab(session: Session, *, tokenizer: str, vocab: Mapping[int, str]) -> None:
    """Store token id -> text once per tokenizer (insert-or-ignore)."""
    rows = [{"tokenizer": tokenizer, "token_id": int(i), "text": t} for i, t in vocab.items()]
    upsert_rows(session, Vocab.__table__, rows, keys=("tokenizer", "token_id"), update=())


def load_vocab(session: Session, *, tokenizer: str, token_ids: Iterable[int] | None = None) -> dict[int, str]:
    query = select(Vocab.token_id, Vocab.text).where(Vocab.tokenizer == tokenizer)
    if token_ids is not None:
        query = query.where(Vocab.token_id.in_(sorted({int(t) for t in token_ids})))
    return {int(token_id): text for token_id, text in session.execute(query)}


def upsert_sequences(session: Session, *, dataset_id: int, sequences: Mapping[int, np.ndarray]) -> None:
    """Keep full token sequences (int32) for the full-prompt view; insert-or-ignore by (dataset, index)."""
    rows = [
        {"dataset_id": dataset_id, "seq_index": int(i), "token_ids": np.asarray(t, dtype="<i4").tobytes()}
        for i, t in sequences.items()
    ]
    upsert_rows(session, Sequence.__table__, rows, keys=("dataset_id", "seq_index"), update=())


def load_sequence(session: Session, *, dataset_id: int, seq_index: int) -> np.ndarray | None:
    blob = session.scalar(
        select(Sequence.token_ids).where(Sequence.dataset_id == dataset_id, Sequence.seq_index == seq_index)
    )
    return None if blob is None else np.frombuffer(blob, dtype="<i4").copy()


def load_sequence_range(session: Session, *, dataset_id: int, seq_start: int, seq_stop: int) -> np.ndarray:
    """Token ids of sequences [seq_start, seq_stop) as an int64 array [n, context]; what a gpu shard reads."""
    blobs = session.execute(
        select(Sequence.seq_index, Sequence.token_ids)
        .where(Sequence.dataset_id == dataset_id, Sequence.seq_index >= seq_start, Sequence.seq_index < seq_stop)
        .order_by(Sequence.seq_index)
    ).all()
    if len(blobs) != seq_stop - seq_start:
        from labeler.errors import StoreError

        raise StoreError(
            f"dataset {dataset_id} has {len(blobs)} of sequences {seq_start}..{seq_stop - 1} stored; resubmit the job"
        )
    return np.stack([np.frombuffer(b, dtype="<i4") for _, b in blobs]).astype(np.int64)
