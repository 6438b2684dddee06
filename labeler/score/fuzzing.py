"""Fuzzing scorer: given the label, can the LLM tell correctly marked tokens from wrongly marked ones?

Each activating window is shown once, either with its true active tokens marked or with as many tokens
marked at random among the inactive ones (half and half, deterministic per feature and label). Value:
balanced accuracy of "the marking is correct"; AUROC from P(1) where logprobs exist.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from labeler.llm.text import render, window_tokens
from labeler.score.judge import LLMJudgeScorer, Trial, feature_rng
from labeler.score.prompts import fuzzing as prompt
from labeler.types import FeatureExamples, Window


def wrong_marks(active: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """As many marks as there are active tokens, all on inactive ones; None if the window has none free."""
    free = np.flatnonzero(~active)
    if len(free) == 0:
        return None
    k = min(len(free), max(1, int(active.sum())))
    marks = np.zeros(len(active), dtype=bool)
    marks[rng.choice(free, size=k, replace=False)] = True
    return marks


class FuzzingScorer(LLMJudgeScorer):
    name: ClassVar[str] = "fuzzing"
    system: ClassVar[str] = prompt.SYSTEM
    user: ClassVar[str] = prompt.USER

    def trial(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> Trial | str:
        windows = [w for w in activating if (w.activations_q > 0).any()]
        if len(windows) < 2:
            return "needs at least two activating windows"
        rng = feature_rng(feature, label, self.name)
        fuzzed = set(rng.permutation(len(windows))[: len(windows) // 2].tolist())
        items = []
        for i, window in enumerate(windows):
            active = window.activations_q > 0
            marks = wrong_marks(active, rng) if i in fuzzed else None
            correct = marks is None
            items.append((render(window_tokens(window), active if correct else marks), int(correct)))
        if all(t for _, t in items):
            return "no window has inactive tokens to mark wrongly"
        order = rng.permutation(len(items))
        n_correct = sum(t for _, t in items)
        return Trial(
            contexts=tuple(items[i][0] for i in order),
            truth=tuple(items[i][1] for i in order),
            counts={"n_correct": n_correct, "n_fuzzed": len(items) - n_correct},
        )
