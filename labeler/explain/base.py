"""The one interface every explainer implements; explainers are registered by name in `labeler.explain`."""

from __future__ import annotations

from typing import ClassVar, Protocol, Sequence

from labeler.types import FeatureExamples, LabelCandidate, Window


class Explainer(Protocol):
    """Proposes label candidates for one feature from the windows it is shown.

    Raises `ExplanationParseError` (never returns a placeholder) when no usable label comes back.
    """

    name: ClassVar[str]

    async def explain(
        self, feature: FeatureExamples, shown: Sequence[Window], n_candidates: int
    ) -> list[LabelCandidate]: ...
