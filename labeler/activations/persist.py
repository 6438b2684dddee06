"""Write a merged result for one SAE through the store: sequences, feature rows, example rows."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from sqlalchemy.orm import Session

from labeler.activations.select import FeatureExamplesDraft
from labeler.store.features import replace_examples, upsert_features
from labeler.store.sources import upsert_sequences


def persist_features(
    session: Session,
    *,
    sae_id: int,
    dataset_id: int,
    job_id: int | None,
    drafts: Sequence[FeatureExamplesDraft],
    sequences: Mapping[int, np.ndarray],
) -> None:
    """Upsert every draft's stats and replace its examples, in the caller's transaction; idempotent.

    `sequences` (seq_index -> token ids) are stored insert-or-ignore for the full-prompt view; pass
    `summary.sequences` unless the dataset's sequences are stored already. Dead features get their row and
    lose any old examples.
    """
    if sequences:
        upsert_sequences(session, dataset_id=dataset_id, sequences=sequences)
    if not drafts:
        return
    ids = upsert_features(session, sae_id=sae_id, stats=[d.stats for d in drafts], dataset_id=dataset_id, job_id=job_id)
    replace_examples(session, dataset_id=dataset_id, examples_by_feature={ids[d.feature_index]: d.examples for d in drafts})
