"""Frozen values passed between stages: activations -> explain -> score -> disputes.

A stage returns new values and never mutates its inputs; the store turns them into rows and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

EXAMPLE_KINDS = ("top", "quantile", "negative")


@dataclass(frozen=True)
class Window:
    """A window of one sequence with one feature's activation on every token, quantized.

    activation[i] = activations_q[i] * scale. `max_position` is absolute within the sequence.
    `token_strs` is filled when the window is loaded for display or for an LLM (from the vocab table).
    """

    kind: str
    quantile: int
    rank: int
    seq_index: int
    window_start: int
    token_ids: np.ndarray  # int32
    activations_q: np.ndarray  # uint8
    scale: float
    max_position: int
    max_activation: float
    token_strs: tuple[str, ...] | None = None

    def activations(self) -> np.ndarray:
        return self.activations_q.astype(np.float32) * np.float32(self.scale)


@dataclass(frozen=True)
class FeatureStats:
    """Whole-dataset statistics of one feature. Histogram covers non-zero activations only."""

    feature_index: int
    n_tokens: int
    n_firing: int
    max_activation: float
    sum_activation: float
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]
    is_rare: bool = False

    @property
    def is_dead(self) -> bool:
        return self.n_firing == 0

    @property
    def density(self) -> float:
        return self.n_firing / self.n_tokens if self.n_tokens else 0.0

    @property
    def mean_activation(self) -> float:
        """Mean over firing tokens (the mean over all tokens is density * this)."""
        return self.sum_activation / self.n_firing if self.n_firing else 0.0


@dataclass(frozen=True)
class FeatureExamples:
    """What the labelling stages consume for one feature."""

    sae_id: int
    feature_index: int
    stats: FeatureStats
    examples: tuple[Window, ...]

    def of_kind(self, kind: str) -> tuple[Window, ...]:
        return tuple(w for w in self.examples if w.kind == kind)


@dataclass(frozen=True)
class LabelCandidate:
    """A proposed label; source is llm | offline | human | import."""

    feature_index: int
    text: str
    source: str
    method: str
    model: str = ""
    prompt_hash: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class ScoreResult:
    """One scorer's verdict; value None means skipped, with the reason in details['skipped']."""

    method: str
    scorer_model: str
    value: float | None
    n_examples: int
    details: dict[str, Any] = field(default_factory=dict)
