"""What detection and fuzzing share: the LLM judges many contexts in one request, answering a 0/1 list.

One request per (label, scorer) instead of one per context: 20 contexts cost one call, not 20. The score
is the balanced accuracy of the verdicts against the truth (0.5 is chance, 1.0 perfect). Where the
endpoint returns logprobs, P(1) at each verdict gives an AUROC as well (in details).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from labeler.config import LabelConfig
from labeler.errors import ConfigError
from labeler.llm import ChatRequest, LLMContext
from labeler.llm.attempts import MAX_ATTEMPTS, attempt_requests, first_parsed
from labeler.llm.parse import binary_probabilities, parse_binary_list
from labeler.llm.text import numbered
from labeler.score.metrics import auroc, balanced_accuracy, true_rates
from labeler.types import FeatureExamples, ScoreResult, Window

TOP_LOGPROBS = 5


@dataclass(frozen=True)
class Trial:
    """The contexts shown to the judge, in the order shown, and the verdict each one should get."""

    contexts: tuple[str, ...]
    truth: tuple[int, ...]
    counts: dict

    @property
    def n(self) -> int:
        return len(self.contexts)


def feature_rng(feature: FeatureExamples, label: str, salt: str) -> np.random.Generator:
    """Deterministic per (feature, label, scorer): the same run asks the same question, so the ledger hits."""
    seed = zlib.crc32(f"{feature.sae_id}:{feature.feature_index}:{salt}:{label}".encode())
    return np.random.default_rng(seed)


class LLMJudgeScorer:
    """Base of detection and fuzzing; a subclass builds the `Trial` and names its prompt."""

    name: ClassVar[str]
    needs_llm: ClassVar[bool] = True
    system: ClassVar[str]
    user: ClassVar[str]

    def __init__(self, *, llm: LLMContext | None, max_attempts: int = MAX_ATTEMPTS) -> None:
        if llm is None:
            raise ConfigError(f"the {self.name} scorer needs an LLM endpoint: set LABELER_LLM_BASE_URL")
        self.client = llm.score
        self.max_attempts = max_attempts
        # plans made for the ledger prefetch, kept until `score` uses them (contexts are rendered once)
        self._plans: dict[tuple[int, int, str], tuple[Sequence[Window], Sequence[Window], Trial | str, list]] = {}

    @classmethod
    def from_config(cls, *, config: LabelConfig, llm: LLMContext | None):
        return cls(llm=llm)

    def trial(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> Trial | str:
        """The trial, or why there is none (a skip reason)."""
        raise NotImplementedError

    def _requests(self, label: str, trial: Trial, logprobs: bool) -> list[ChatRequest]:
        messages = (
            ("system", self.system),
            ("user", self.user.format(label=label, contexts=numbered(trial.contexts), n=trial.n)),
        )
        return attempt_requests(
            self.client,
            messages,
            attempts=self.max_attempts,
            max_tokens=8 + 4 * trial.n,
            logprobs=logprobs,
            top_logprobs=TOP_LOGPROBS if logprobs else None,
        )

    async def _plan(self, label, feature, activating, non_activating) -> tuple[Trial | str, list[ChatRequest]]:
        memo = self._plans.pop((feature.sae_id, feature.feature_index, label), None)
        if memo is not None and memo[0] is activating and memo[1] is non_activating:
            return memo[2], memo[3]
        trial = self.trial(label, feature, activating, non_activating)
        if isinstance(trial, str):
            return trial, []
        return trial, self._requests(label, trial, await self.client.supports_logprobs())

    async def planned_requests(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> list[ChatRequest]:
        trial, requests = await self._plan(label, feature, activating, non_activating)
        self._plans[(feature.sae_id, feature.feature_index, label)] = (activating, non_activating, trial, requests)
        return requests

    async def score(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> ScoreResult:
        trial, requests = await self._plan(label, feature, activating, non_activating)
        if isinstance(trial, str):
            return ScoreResult(self.name, self.client.model, None, 0, {"skipped": trial})
        logprobs = requests[0].logprobs
        verdicts, answer = await first_parsed(
            self.client,
            requests,
            lambda a: parse_binary_list(a.text, trial.n),
            what=f"{self.name} scorer on feature {feature.feature_index}",
        )
        value = balanced_accuracy(trial.truth, verdicts)
        tpr, tnr = true_rates(trial.truth, verdicts)
        details: dict = {
            **trial.counts,
            "true_positive_rate": round(tpr, 4),
            "true_negative_rate": round(tnr, 4),
            "truth": list(trial.truth),
            "verdicts": verdicts,
        }
        probs = binary_probabilities(answer.choices[0].logprobs, trial.n) if answer.choices else None
        if probs is not None:
            details["auroc"] = round(auroc(probs, trial.truth), 4)
            details["p_yes"] = [round(p, 4) for p in probs]
        else:
            details["auroc"] = None
            details["auroc_skipped"] = (
                "endpoint returns no logprobs" if not logprobs else "logprobs did not line up with the verdicts"
            )
        return ScoreResult(self.name, self.client.model, value, trial.n, details)
