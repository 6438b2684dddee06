"""Simulation scorer: from the label alone, the LLM predicts 0-10 on every token; value = Pearson r with the truth.

As in OpenAI's method, a prediction is the expected value over the model's probabilities for 0..10 at
that position, so it needs logprobs: on an endpoint without them (probed once per client) the scorer
returns value None with details["skipped"]. Windows are capped per kind because every token costs a
few completion tokens.
"""

from __future__ import annotations

import json
from typing import ClassVar, Sequence

import numpy as np

from labeler.config import LabelConfig
from labeler.errors import ConfigError
from labeler.llm import ChatRequest, LLMContext
from labeler.llm.attempts import MAX_ATTEMPTS, attempt_requests, first_parsed
from labeler.llm.parse import expected_levels, parse_level_lists
from labeler.llm.text import numbered, token_pieces, window_tokens
from labeler.score.metrics import pearson
from labeler.score.prompts import simulation as prompt
from labeler.types import FeatureExamples, ScoreResult, Window

WINDOWS_PER_KIND = 5  # 10 windows x ~32 tokens x ~3 completion tokens each: ~1k completion tokens
TOP_LOGPROBS = 5
NO_LOGPROBS = "endpoint returns no logprobs"


class SimulationScorer:
    name: ClassVar[str] = "simulation"
    needs_llm: ClassVar[bool] = True

    def __init__(self, *, llm: LLMContext | None, max_attempts: int = MAX_ATTEMPTS) -> None:
        if llm is None:
            raise ConfigError("the simulation scorer needs an LLM endpoint: set LABELER_LLM_BASE_URL")
        self.client = llm.score
        self.max_attempts = max_attempts

    @classmethod
    def from_config(cls, *, config: LabelConfig, llm: LLMContext | None) -> "SimulationScorer":
        return cls(llm=llm)

    @staticmethod
    def windows(activating: Sequence[Window], non_activating: Sequence[Window]) -> list[Window]:
        return [*activating[:WINDOWS_PER_KIND], *non_activating[:WINDOWS_PER_KIND]]

    def _requests(self, label: str, windows: Sequence[Window]) -> list[ChatRequest]:
        contexts = [json.dumps([p.strip() for p in token_pieces(window_tokens(w))], ensure_ascii=False) for w in windows]
        n_tokens = sum(len(w.token_ids) for w in windows)
        messages = (
            ("system", prompt.SYSTEM),
            ("user", prompt.USER.format(label=label, contexts=numbered(contexts), n=len(windows))),
        )
        return attempt_requests(
            self.client,
            messages,
            attempts=self.max_attempts,
            max_tokens=16 + 3 * n_tokens,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
        )

    async def planned_requests(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> list[ChatRequest]:
        windows = self.windows(activating, non_activating)
        if not activating or not await self.client.supports_logprobs():
            return []
        return self._requests(label, windows)

    async def score(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> ScoreResult:
        if not await self.client.supports_logprobs():
            return ScoreResult(self.name, self.client.model, None, 0, {"skipped": NO_LOGPROBS})
        if not activating:
            return ScoreResult(self.name, self.client.model, None, 0, {"skipped": "needs activating windows"})
        windows = self.windows(activating, non_activating)
        lengths = [len(w.token_ids) for w in windows]
        levels, answer = await first_parsed(
            self.client,
            self._requests(label, windows),
            lambda a: parse_level_lists(a.text, lengths),
            what=f"simulation scorer on feature {feature.feature_index}",
        )
        expected = expected_levels(answer.choices[0].logprobs, sum(lengths))
        predicted = np.asarray(expected if expected is not None else [v for row in levels for v in row], dtype=np.float64)
        truth = np.concatenate([w.activations() for w in windows])
        r = pearson(predicted, truth)
        details = {
            "n_activating": min(len(activating), WINDOWS_PER_KIND),
            "n_non_activating": min(len(non_activating), WINDOWS_PER_KIND),
            "n_tokens": int(sum(lengths)),
            "prediction": "expected value from logprobs" if expected is not None else "sampled integers",
        }
        if r is None:
            details["constant_prediction"] = True  # no variation predicted: no correlation, scored 0
        return ScoreResult(self.name, self.client.model, 0.0 if r is None else r, len(windows), details)
