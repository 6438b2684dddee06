"""Seed a database through the store functions: an SAE, a dataset with vocab and full sequences, three
features with examples, label candidates with scores, open disputes, and two users with API tokens.

`hostile=True` puts markup into everything that comes from datasets or LLMs (tokens, dataset and SAE
names, labels, score details, dispute details), to prove the UI shows it as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sqlalchemy.orm import Session

from labeler.store.features import replace_examples, upsert_features
from labeler.store.jobs import create_job
from labeler.store.labels import upsert_labels, upsert_scores
from labeler.store.models import Dispute, DisputeReason
from labeler.store.sources import upsert_dataset, upsert_sae, upsert_sequences, upsert_vocab
from labeler.store.upsert import ids_by_key, upsert_rows
from labeler.store.users import set_api_token_hash, upsert_user
from labeler.types import FeatureStats, LabelCandidate, ScoreResult, Window
from labeler.web.security import hash_api_token, hash_password

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TOKENIZER = "toy-tokenizer"
WORDS = ["[CLS]", "The", " cat", " sat", " on", " the", " mat", ".", " A", " dog", " barked", " at", " night", " and",
         " slept", " well"]
CONTEXT = 16
ADMIN = ("ada", "ada-password-1")
REVIEWER = ("rita", "rita-password-1")


@lru_cache(maxsize=None)
def password_hash(password: str) -> str:
    """Hashed once per test session: scrypt is slow on purpose, and every test seeds the same users."""
    return hash_password(password)


@dataclass(frozen=True)
class Seeded:
    sae_id: int
    dataset_id: int
    feature_ids: dict[int, int]  # feature index -> feature id
    label_ids: dict[str, int]  # label text -> label id
    admin_token: str
    reviewer_token: str
    hostile: bool


def _vocab(hostile: bool) -> dict[int, str]:
    words = list(WORDS)
    if hostile:
        words += [f" {SCRIPT}", f" {IMG}"]
    return dict(enumerate(words))


def _sequences(hostile: bool, n: int = 6) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(0)
    n_words = len(_vocab(hostile))
    seqs = {}
    for i in range(n):
        ids = rng.integers(1, len(WORDS), size=CONTEXT)
        ids[0] = 0  # [CLS]
        if hostile:
            ids[4], ids[6] = n_words - 2, n_words - 1  # inside every window below
        seqs[i] = ids.astype(np.int32)
    return seqs


def _window(seqs, *, kind, quantile, rank, seq_index, peak, scale=0.02, start=2, stop=12) -> Window:
    token_ids = seqs[seq_index][start:stop]
    q = np.zeros(stop - start, dtype=np.uint8)
    if kind != "negative":
        q[peak - start] = 255
        q[peak - start - 1] = 90
        q[peak - start + 1] = 30
    return Window(
        kind=kind,
        quantile=quantile,
        rank=rank,
        seq_index=seq_index,
        window_start=start,
        token_ids=token_ids,
        activations_q=q,
        scale=scale,
        max_position=peak if kind != "negative" else start,
        max_activation=float(q.max()) * scale,
    )


def seed(session: Session, *, hostile: bool = False) -> Seeded:
    mark = f" {SCRIPT} {IMG}" if hostile else ""
    sae_id = upsert_sae(
        session,
        name=f"toy-sae{mark}",
        source="local",
        release=None,
        sae_id=None,
        path="/nonexistent/toy-sae",
        model_name="toy-model",
        hook_name="blocks.0.hook_resid_post",
        d_in=8,
        d_sae=4,
        architecture="standard",
        checksum="0" * 64,
    )
    seqs = _sequences(hostile)
    dataset_id = upsert_dataset(
        session,
        name=f"toy-dataset{mark}",
        source="test",
        tokenizer=TOKENIZER,
        context_size=CONTEXT,
        n_sequences=len(seqs),
        n_tokens=CONTEXT * len(seqs),
        content_hash="1" * 64,
    )
    upsert_vocab(session, tokenizer=TOKENIZER, vocab=_vocab(hostile))
    upsert_sequences(session, dataset_id=dataset_id, sequences=seqs)
    stats = [
        FeatureStats(0, 96, 12, 5.1, 20.0, (0.0, 1.0, 2.0, 3.0, 4.0, 5.1), (5, 3, 2, 1, 1)),
        FeatureStats(1, 96, 3, 2.0, 3.0, (0.0, 1.0, 2.0), (2, 1), is_rare=True),
        FeatureStats(2, 96, 0, 0.0, 0.0, (), ()),
    ]
    feature_ids = upsert_features(session, sae_id=sae_id, stats=stats, dataset_id=dataset_id)
    replace_examples(
        session,
        dataset_id=dataset_id,
        examples_by_feature={
            feature_ids[0]: [
                _window(seqs, kind="top", quantile=0, rank=0, seq_index=0, peak=5),
                _window(seqs, kind="top", quantile=0, rank=1, seq_index=1, peak=7, scale=0.015),
                _window(seqs, kind="quantile", quantile=1, rank=0, seq_index=2, peak=6, scale=0.008),
                _window(seqs, kind="quantile", quantile=0, rank=0, seq_index=3, peak=9, scale=0.003),
                _window(seqs, kind="negative", quantile=0, rank=0, seq_index=4, peak=0),
            ],
            feature_ids[1]: [_window(seqs, kind="top", quantile=0, rank=0, seq_index=5, peak=8, scale=0.0078)],
        },
    )
    candidates = [
        LabelCandidate(0, f"cats sitting on mats{mark}", "llm", "explain", "toy-llm", prompt_tokens=420, completion_tokens=12),
        LabelCandidate(0, f"animal nouns{mark}", "llm", "explain", "toy-llm", prompt_tokens=420, completion_tokens=9),
        LabelCandidate(1, "end of sentence", "offline", "lift", ""),
    ]
    label_list = upsert_labels(session, feature_ids=feature_ids, candidates=candidates)
    label_ids = {c.text: i for c, i in zip(candidates, label_list)}
    details = {"balanced_accuracy": 0.55, "note": f"scorer said{mark}"}
    upsert_scores(
        session,
        results=[
            (label_list[0], ScoreResult("detection", "toy-llm", 0.55, 20, details)),
            (label_list[0], ScoreResult("embedding", "minilm", 0.61, 20, {"auroc": 0.61})),
            (label_list[1], ScoreResult("detection", "toy-llm", 0.48, 20, {"balanced_accuracy": 0.48})),
            (label_list[1], ScoreResult("fuzzing", "toy-llm", None, 0, {"skipped": "no logprobs"})),
            (label_list[2], ScoreResult("embedding", "minilm", 0.58, 10, {"auroc": 0.58})),
        ],
    )
    upsert_rows(
        session,
        Dispute.__table__,
        [
            {"feature_id": feature_ids[0], "status": "open", "priority": 0.9},
            {"feature_id": feature_ids[1], "status": "open", "priority": 0.4},
        ],
        keys=("feature_id",),
    )
    dispute_ids = ids_by_key(session, Dispute.__table__, ("feature_id",), [(feature_ids[0],), (feature_ids[1],)])
    upsert_rows(
        session,
        DisputeReason.__table__,
        [
            {"dispute_id": dispute_ids[(feature_ids[0],)], "reason": "low_score", "details": {"best": 0.61, "why": f"low{mark}"}},
            {"dispute_id": dispute_ids[(feature_ids[0],)], "reason": "candidates_disagree", "details": {"similarity": 0.2}},
            {"dispute_id": dispute_ids[(feature_ids[1],)], "reason": "low_score", "details": {"best": 0.58}},
        ],
        keys=("dispute_id", "reason"),
    )
    tokens = {}
    for (name, password), role in ((ADMIN, "admin"), (REVIEWER, "reviewer")):
        upsert_user(session, name=name, role=role, password_hash=password_hash(password))
        tokens[role] = f"lbl_test_{role}_token_0123456789"
        set_api_token_hash(session, name=name, token_hash=hash_api_token(tokens[role]))
    session.commit()
    return Seeded(sae_id, dataset_id, feature_ids, label_ids, tokens["admin"], tokens["reviewer"], hostile)


def add_job(session: Session, seeded: Seeded, *, submission_id: str) -> int:
    """A queued job on the seeded SAE and dataset (two shards), through the store like a submission."""
    return create_job(
        session,
        submission_id=submission_id,
        sae_id=seeded.sae_id,
        dataset_id=seeded.dataset_id,
        config={},
        shards=[(0, 3), (3, 6)],
        n_tokens=CONTEXT * 6,
    )
