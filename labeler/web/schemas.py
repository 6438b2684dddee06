"""Request and response bodies of the HTTP API, apart from the SQL tables.

Responses are built from the store's frozen views, never from table rows, so no password or token hash
can reach a client: `UserPublic` has no field for either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from labeler.store.review import MAX_LABEL_CHARS, MAX_NOTE_CHARS

MAX_ID = 2**31 - 1  # ids are SQL INTEGERs; PostgreSQL refuses to even compare with a larger number


def storable(value: str | None) -> str | None:
    """Refuse text SQL cannot store, at the door, instead of failing deep in the driver."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


Text = Annotated[str, AfterValidator(storable)]
OptionalText = Annotated[str | None, AfterValidator(storable)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Role = Literal["reviewer", "admin"]
LabelStatus = Literal["candidate", "accepted", "rejected", "superseded"]
MAX_TRY_CHARS = 2000  # one forward pass of the model; a few hundred tokens at most


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserPublic(_Out):
    id: int
    name: str
    role: Role
    has_api_token: bool
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: Text = Field(min_length=8, max_length=200)
    role: Role = "reviewer"


class ScoreOut(_Out):
    method: str
    scorer_model: str
    value: float | None
    n_examples: int
    details: dict[str, Any] | None


class LabelOut(_Out):
    id: int
    text: str
    source: str
    method: str
    model: str
    status: str
    is_current: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    created_at: datetime
    scores: list[ScoreOut]


class ReasonOut(_Out):
    reason: str
    details: dict[str, Any] | None


class DisputeOut(_Out):
    id: int
    status: str
    priority: float
    reasons: list[ReasonOut]


class TokenOut(_Out):
    text: str
    activation: float | None = Field(description="None outside the stored window: not measured, not zero.")


class ExampleOut(_Out):
    kind: str
    quantile: int
    rank: int
    seq_index: int
    max_activation: float
    full_context: bool = Field(description="False when only the window could be shown.")
    tokens: list[TokenOut]


class EventOut(_Out):
    id: int
    action: str
    user_name: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None
    created_at: datetime


class FeatureOut(_Out):
    id: int
    sae_id: int
    sae_name: str
    model_name: str
    hook_name: str
    feature_index: int
    dataset_name: str | None
    job_id: int | None
    n_tokens: int
    n_firing: int
    density: float
    max_activation: float
    mean_activation: float
    histogram_edges: list[float]
    histogram_counts: list[int]
    is_dead: bool
    is_rare: bool
    label_state: str
    label_error: str | None
    current_label_id: int | None
    labels: list[LabelOut]
    dispute: DisputeOut | None
    examples: list[ExampleOut]
    events: list[EventOut]


class QueueItemOut(_Out):
    dispute_id: int
    feature_id: int
    sae_id: int
    sae_name: str
    feature_index: int
    priority: float
    density: float
    reasons: list[str]
    label_text: str | None
    n_candidates: int
    updated_at: datetime


class QueueOut(BaseModel):
    total: int
    reason_counts: dict[str, int]
    items: list[QueueItemOut]


class LabelHitOut(_Out):
    label_id: int
    feature_id: int
    sae_id: int
    sae_name: str
    feature_index: int
    text: str
    source: str
    status: str
    is_current: bool
    scores: dict[str, float | None]


class StageProgressOut(BaseModel):
    done: int
    total: int


class JobOut(BaseModel):
    id: int
    submission_id: str
    sae_id: int
    sae_name: str
    status: str
    error: str | None
    progress: dict[str, StageProgressOut]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    created_at: datetime
    finished_at: datetime | None


class SubmissionOut(BaseModel):
    submission_id: str
    job_ids: list[int]


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label_id: Id
    note: OptionalText = Field(default=None, max_length=MAX_NOTE_CHARS)


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    note: OptionalText = Field(default=None, max_length=MAX_NOTE_CHARS)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: OptionalText = Field(default=None, max_length=MAX_NOTE_CHARS)


class RelabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    explain_model: OptionalText = Field(default=None, max_length=200, description="Default: the configured explainer.")
    note: OptionalText = Field(default=None, max_length=MAX_NOTE_CHARS)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class ReviewOutcomeOut(_Out):
    event_id: int
    feature_id: int
    action: str
    current_label_id: int | None
    dispute_status: str | None


class TryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text = Field(min_length=1, max_length=MAX_TRY_CHARS)


class TryOut(BaseModel):
    tokens: list[TokenOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
