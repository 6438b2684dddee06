"""SQL tables: the public data model (DESIGN.md section 3). Users query these and the views directly.

Every table that a task writes has a natural unique key, so writes are upserts and a redelivered task
changes nothing twice. Activations are stored quantized (uint8 per token + one float scale per example).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SAE(Base):
    """One sparse autoencoder at one hook of one model. Natural key: weights checksum + hook."""

    __tablename__ = "saes"
    __table_args__ = (UniqueConstraint("checksum", "hook_name", name="uq_saes_checksum_hook"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    source: Mapped[str] = mapped_column(String(20))  # pretrained | local
    release: Mapped[str | None] = mapped_column(String(400))
    sae_id: Mapped[str | None] = mapped_column(String(400))
    path: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str] = mapped_column(String(400))
    hook_name: Mapped[str] = mapped_column(String(200))
    d_in: Mapped[int] = mapped_column(Integer)
    d_sae: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(50))
    checksum: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    """A tokenized text dataset. Natural key: content hash + tokenizer + context size."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("content_hash", "tokenizer", "context_size", name="uq_datasets_content"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(400))
    source: Mapped[str] = mapped_column(Text)
    tokenizer: Mapped[str] = mapped_column(String(400))
    context_size: Mapped[int] = mapped_column(Integer)
    n_sequences: Mapped[int] = mapped_column(Integer)
    n_tokens: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Vocab(Base):
    """Token id -> text per tokenizer, so token ids decode to strings in plain SQL."""

    __tablename__ = "vocab"

    tokenizer: Mapped[str] = mapped_column(String(400), primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Sequence(Base):
    """A full tokenized context (int32 little-endian token ids), kept for the full-prompt view."""

    __tablename__ = "sequences"
    __table_args__ = (UniqueConstraint("dataset_id", "seq_index", name="uq_sequences_dataset_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    seq_index: Mapped[int] = mapped_column(Integer)
    token_ids: Mapped[bytes] = mapped_column(LargeBinary)


class Job(Base):
    """One submission of one SAE over one dataset; jobs sharing `submission_id` share a forward pass."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    sae_id: Mapped[int] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobProgress(Base):
    """Per-stage counters (done of total); fan-in counts these, not Celery chords."""

    __tablename__ = "job_progress"
    __table_args__ = (UniqueConstraint("job_id", "stage", name="uq_job_progress_job_stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(20))
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class JobShard(Base):
    """One dataset shard of one job: its mergeable activation summary once cached."""

    __tablename__ = "job_shards"
    __table_args__ = (UniqueConstraint("job_id", "shard_index", name="uq_job_shards_job_shard"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    shard_index: Mapped[int] = mapped_column(Integer)
    seq_start: Mapped[int] = mapped_column(Integer)
    seq_stop: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | done
    summary: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Feature(Base):
    """One SAE feature with its activation statistics over the dataset it was cached on."""

    __tablename__ = "features"
    __table_args__ = (UniqueConstraint("sae_id", "feature_index", name="uq_features_sae_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sae_id: Mapped[int] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"))
    feature_index: Mapped[int] = mapped_column(Integer)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    n_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    n_firing: Mapped[int] = mapped_column(BigInteger, default=0)
    density: Mapped[float] = mapped_column(Float, default=0.0)
    max_activation: Mapped[float] = mapped_column(Float, default=0.0)
    mean_activation: Mapped[float] = mapped_column(Float, default=0.0)
    histogram: Mapped[dict | None] = mapped_column(JSON)  # {"edges": [...], "counts": [...]}
    is_dead: Mapped[bool] = mapped_column(default=False)
    is_rare: Mapped[bool] = mapped_column(default=False)
    label_state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | labelled | failed
    label_error: Mapped[str | None] = mapped_column(Text)
    current_label_id: Mapped[int | None] = mapped_column(
        ForeignKey("labels.id", ondelete="SET NULL", use_alter=True)
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Example(Base):
    """A window of one sequence with this feature's quantized activation on every token.

    activation = byte * scale. kind: top | quantile | negative; quantile is 0 unless kind == quantile.
    """

    __tablename__ = "examples"
    __table_args__ = (
        UniqueConstraint("feature_id", "kind", "quantile", "rank", name="uq_examples_feature_kind_rank"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    feature_id: Mapped[int] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    quantile: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int] = mapped_column(Integer)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    seq_index: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[int] = mapped_column(Integer)
    token_ids: Mapped[bytes] = mapped_column(LargeBinary)  # int32 little-endian
    activations: Mapped[bytes] = mapped_column(LargeBinary)  # uint8, one per token
    scale: Mapped[float] = mapped_column(Float)
    max_position: Mapped[int] = mapped_column(Integer)  # absolute position in the sequence
    max_activation: Mapped[float] = mapped_column(Float)


class Label(Base):
    """A label candidate for a feature. Natural key: feature + source + method + model + text."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("feature_id", "source", "method", "model", "text", name="uq_labels_natural"),
        Index("ix_labels_feature_status", "feature_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    feature_id: Mapped[int] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))  # llm | offline | human | import
    method: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200), default="")
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="candidate")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Score(Base):
    """One scorer's verdict on one label. Natural key: label + method + scorer model."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("label_id", "method", "scorer_model", name="uq_scores_natural"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(50))
    scorer_model: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[float | None] = mapped_column(Float)  # None: skipped, reason in details
    n_examples: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dispute(Base):
    """A feature whose labels are doubtful; one row per feature, reopened when rules fire again."""

    __tablename__ = "disputes"
    __table_args__ = (UniqueConstraint("feature_id", name="uq_disputes_feature"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feature_id: Mapped[int] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)  # open | resolved
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    # how it was closed: None while open | rules (no rule fires any more) | reviewer (a person decided);
    # re-evaluation never reopens a reviewer's resolution for reasons the reviewer already saw
    resolution: Mapped[str | None] = mapped_column(String(20))
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class DisputeReason(Base):
    """One rule that fired for a dispute (low_score, candidates_disagree, collision, ...)."""

    __tablename__ = "dispute_reasons"
    __table_args__ = (UniqueConstraint("dispute_id", "reason", name="uq_dispute_reasons_dispute_reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(50), index=True)
    details: Mapped[dict | None] = mapped_column(JSON)


class User(Base):
    """A reviewer or admin of the web UI; API clients authenticate with a hashed token."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))  # reviewer | admin
    api_token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewEvent(Base):
    """The audit trail: who did what to which feature's labels, with before and after."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    feature_id: Mapped[int] = mapped_column(ForeignKey("features.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    user_name: Mapped[str | None] = mapped_column(String(100))  # kept when the user is deleted
    action: Mapped[str] = mapped_column(String(30))  # accept | edit | reject | relabel | note | flag
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LLMCall(Base):
    """Cache and ledger of LLM requests: the same request hash is never paid for twice."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Indexes behind the documented SQL queries (docs/sql.md), created by migration 0002. Declared here so the
# drift test compares them. On PostgreSQL ix_labels_text is a pg_trgm GIN index for LIKE/ILIKE '%word%'
# search (a B-tree on SQLite) and ix_labels_text_lower_trgm serves the portable lower(label) LIKE form.
Index("ix_scores_method_value", Score.method, Score.value)
Index("ix_disputes_status_priority", Dispute.status, Dispute.priority)
Index("ix_review_events_created_at", ReviewEvent.created_at)
Index("ix_features_sae_id_density", Feature.sae_id, Feature.density)
Index("ix_features_sae_id_is_dead", Feature.sae_id, Feature.is_dead)
Index("ix_features_current_label_id", Feature.current_label_id)
Index("ix_labels_job_id", Label.job_id)
Index("ix_labels_text", Label.text, postgresql_using="gin", postgresql_ops={"text": "gin_trgm_ops"})
Index(
    "ix_labels_text_lower_trgm",
    func.lower(Label.text).label("text_lower"),
    postgresql_using="gin",
    postgresql_ops={"text_lower": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")
