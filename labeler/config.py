"""Per-job options, stored as JSON in `jobs.config` so every worker runs a job exactly as submitted.

Service settings (URLs, keys, device) are in `labeler.settings`; this is what a researcher tunes per run.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ActivationConfig(BaseModel):
    """How the activation pass reads the dataset and what it keeps per feature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_tokens: int = Field(default=131_072, ge=1, description="Tokens to read from the dataset (rounded up to whole sequences).")
    context_size: int = Field(default=128, ge=4, le=8192, description="Tokens per sequence, special tokens included.")
    batch_size: int = Field(default=32, ge=1, description="Sequences per forward pass.")
    n_shards: int = Field(default=4, ge=1, description="Dataset shards; the unit of work on the gpu queue.")
    top_k: int = Field(default=20, ge=1, description="Top-activating examples kept per feature.")
    top_distinct_sequences: bool = Field(
        default=True,
        description="Top examples come from distinct sequences (each one's best position), so no two of them show the same passage.",
    )
    n_quantiles: int = Field(default=10, ge=0, description="Activation quantile bins sampled per feature.")
    per_quantile: int = Field(default=5, ge=0, description="Examples drawn from each quantile bin.")
    reservoir_size: int = Field(default=200, ge=0, description="Uniform sample of activating positions kept per feature.")
    n_negatives: int = Field(default=20, ge=0, description="Random windows where the feature is zero.")
    window_before: int = Field(default=24, ge=0, description="Tokens shown before the example's position.")
    window_after: int = Field(default=8, ge=0, description="Tokens shown after the example's position.")
    histogram_bins: int = Field(default=32, ge=2)
    rare_below: int = Field(default=20, ge=0, description="Features firing on fewer tokens are labelled but flagged rare.")
    seed: int = 0


class LabelConfig(BaseModel):
    """How features are explained and scored, and when a label is disputed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    explainer: str = Field(default="auto", description="auto (llm when an endpoint is set, else offline) | llm | offline")
    n_candidates: int = Field(default=1, ge=1, le=10)
    n_explain_examples: int = Field(default=20, ge=1, description="Windows shown to the explainer (top + quantiles).")
    show_activation_values: bool = False
    scorers: tuple[str, ...] = Field(default=("detection", "fuzzing", "embedding"))
    n_score_examples: int = Field(default=10, ge=1, description="Activating windows per scorer, disjoint from explainer's.")
    explain_model: str | None = None
    score_model: str | None = None
    max_prompt_tokens: int | None = Field(default=None, ge=1, description="Per-job budget; the job stops cleanly when spent.")
    max_cost_usd: float | None = Field(default=None, ge=0)
    # dispute thresholds
    min_score: float = Field(default=0.6, description="Best label below this on any scorer is disputed.")
    min_candidate_similarity: float = Field(default=0.5, description="Candidates less similar than this disagree.")
    max_scorer_spread: float = Field(default=0.35, description="Scorers further apart than this disagree.")
    collision_similarity: float = Field(default=0.95, description="Labels of two features this similar collide.")


class JobConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    activation: ActivationConfig = Field(default_factory=ActivationConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    feature_indices: tuple[int, ...] | None = Field(default=None, description="Subset of features; None = all.")

    @model_validator(mode="after")
    def _check_features(self) -> "JobConfig":
        if self.feature_indices is not None and any(i < 0 for i in self.feature_indices):
            raise ValueError("feature indices must be >= 0")
        return self
