"""Detection scorer: from the label alone, can the LLM tell contexts where the feature fires from ones where it does not?

Activating and non-activating windows (none of them shown to the explainer) are shuffled together,
unmarked, and judged in one request. Value: balanced accuracy; AUROC from P(1) where logprobs exist.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from labeler.llm.text import render_window
from labeler.score.judge import LLMJudgeScorer, Trial, feature_rng
from labeler.score.prompts import detection as prompt
from labeler.types import FeatureExamples, Window


class DetectionScorer(LLMJudgeScorer):
    name: ClassVar[str] = "detection"
    system: ClassVar[str] = prompt.SYSTEM
    user: ClassVar[str] = prompt.USER

    def trial(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> Trial | str:
        if not activating or not non_activating:
            return "needs both activating and non-activating windows"
        items = [(render_window(w, mark=False), 1) for w in activating]
        items += [(render_window(w, mark=False), 0) for w in non_activating]
        order = feature_rng(feature, label, self.name).permutation(len(items))
        return Trial(
            contexts=tuple(items[i][0] for i in order),
            truth=tuple(items[i][1] for i in order),
            counts={"n_activating": len(activating), "n_non_activating": len(non_activating)},
        )
