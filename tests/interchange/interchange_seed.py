"""A small labelled SAE for the export/import tests: features, example windows, labels of every status, scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from labeler.store.features import replace_examples, upsert_features
from labeler.store.labels import upsert_labels, upsert_scores
from labeler.store.models import Feature, Label
from labeler.store.sources import upsert_dataset, upsert_sae, upsert_vocab
from labeler.types import FeatureStats, LabelCandidate, ScoreResult, Window

SAE_NAME = "gpt2-small-res-jb/blocks.8.hook_resid_pre"
VOCAB = {0: " The", 1: " critics", 2: " said", 3: " def", 4: " main", 5: "(", 6: ")"}
N_FEATURES = 6


@dataclass(frozen=True)
class Seeded:
    sae_id: int
    feature_ids: dict[int, int]


def create_sae(session: Session, *, with_examples: bool = True) -> Seeded:
    """The SAE, its dataset and vocab, and N_FEATURES features (feature 5 dead); no labels."""
    sae_id = upsert_sae(session, name=SAE_NAME, source="pretrained", release="gpt2-small-res-jb",
                        sae_id="blocks.8.hook_resid_pre", model_name="gpt2-small", hook_name="blocks.8.hook_resid_pre",
                        d_in=768, d_sae=24576, architecture="standard", checksum="9" * 64)
    dataset_id = upsert_dataset(session, name="tiny", source="test", tokenizer="gpt2", context_size=16,
                                n_sequences=2, n_tokens=32, content_hash="8" * 64)
    upsert_vocab(session, tokenizer="gpt2", vocab=VOCAB)
    stats = [FeatureStats(i, 1000, 0 if i == 5 else 10 * (i + 1), 0.0 if i == 5 else 2.0 + i, 1.5 * 10 * (i + 1),
                          (0.0, 1.0, 2.0, 3.0), (0, 0, 0) if i == 5 else (5 * (i + 1), 3 * (i + 1), 2 * (i + 1)))
             for i in range(N_FEATURES)]
    feature_ids = upsert_features(session, sae_id=sae_id, dataset_id=dataset_id, stats=stats)
    if with_examples:
        def window(kind: str, rank: int, tokens: list[int], acts: list[int], quantile: int = 0) -> Window:
            q = np.array(acts, dtype=np.uint8)
            return Window(kind=kind, quantile=quantile, rank=rank, seq_index=rank, window_start=4,
                          token_ids=np.array(tokens, dtype=np.int32), activations_q=q, scale=0.02,
                          max_position=4 + int(q.argmax()), max_activation=float(q.max()) * 0.02)

        replace_examples(session, dataset_id=dataset_id, examples_by_feature={
            feature_ids[0]: [window("top", 0, [0, 1, 2], [0, 250, 10]), window("quantile", 0, [1, 2], [40, 0], 1),
                             window("negative", 0, [3, 4], [0, 0])],
            feature_ids[1]: [window("top", 0, [3, 4, 5, 6], [200, 20, 0, 0])],
        })
    session.commit()
    return Seeded(sae_id, feature_ids)


def seed_labels(session: Session, seeded: Seeded) -> None:
    """Labels of every status, several scorer models, a skipped score, current labels on two features."""
    def add(index: int, text: str, source: str = "llm", method: str = "default", model: str = "gpt-4o-mini") -> int:
        (label_id,) = upsert_labels(session, feature_ids=seeded.feature_ids, job_id=None, candidates=[
            LabelCandidate(index, text, source, method, model, prompt_hash=f"h-{index}-{text[:4]}",
                           prompt_tokens=800 + index, completion_tokens=12, cost_usd=0.00013)])
        return label_id

    critics = add(0, "Criticism and critics, quoted")
    speech = add(0, "reported speech")
    code = add(1, "Python function calls `main()`")
    offline = add(1, "tokens: def, main", source="offline", method="offline-lift", model="")
    rejected = add(2, "nonsense label")
    unicode_label = add(3, "Ünïcödé, \"quotes\" and a\ttab")
    upsert_scores(session, results=[
        (critics, ScoreResult("detection", "gpt-4o-mini", 0.91, 40, {"auroc": 0.95})),
        (critics, ScoreResult("detection", "llama-3-8b", 0.7, 40)),
        (critics, ScoreResult("fuzzing", "gpt-4o-mini", 0.8, 40)),
        (critics, ScoreResult("embedding", "", 0.66, 40)),
        (speech, ScoreResult("detection", "gpt-4o-mini", 0.55, 40)),
        (code, ScoreResult("simulation", "gpt-4o-mini", None, 0, {"skipped": "no logprobs"})),
        (offline, ScoreResult("embedding", "", 0.61, 30)),
        (rejected, ScoreResult("detection", "gpt-4o-mini", 0.1, 40)),
        (unicode_label, ScoreResult("embedding", "", 0.5, 10)),
    ])
    session.execute(update(Label).where(Label.id == rejected).values(status="rejected"))
    session.execute(update(Label).where(Label.id.in_([critics, code])).values(status="accepted"))
    session.execute(update(Label).where(Label.id == speech).values(status="superseded"))
    for index, label_id in ((0, critics), (1, code)):
        session.execute(update(Feature).where(Feature.id == seeded.feature_ids[index]).values(current_label_id=label_id))
    session.commit()
