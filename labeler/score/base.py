"""The one interface every scorer implements; scorers are registered by name in `labeler.score`."""

from __future__ import annotations

from typing import ClassVar, Protocol, Sequence

from labeler.types import FeatureExamples, ScoreResult, Window


class Scorer(Protocol):
    """Judges how well a label predicts a feature's activations.

    `activating` and `non_activating` are windows the explainer never saw (disjoint by construction).
    A scorer that cannot run here (e.g. no logprobs) returns value=None with details["skipped"].
    """

    name: ClassVar[str]

    async def score(
        self,
        label: str,
        feature: FeatureExamples,
        activating: Sequence[Window],
        non_activating: Sequence[Window],
    ) -> ScoreResult: ...
