"""LLM explainer: shows the feature's windows with active tokens marked and asks for a short label.

Candidates: one request with n=N (sampled) gives N candidates for one prompt's tokens; an endpoint that
ignores `n` (Ollama) is topped up with single requests under other seeds. Duplicates (same words, any
case or punctuation) are dropped. An answer that is not a usable label is retried with another seed
(bounded), then the feature fails with ExplanationParseError: never a placeholder label.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Sequence

from labeler.config import LabelConfig
from labeler.errors import ConfigError, ExplanationParseError
from labeler.explain.prompts import explain as prompt
from labeler.llm import ChatAnswer, ChatRequest, LLMContext
from labeler.llm.attempts import MAX_ATTEMPTS, RETRY_TEMPERATURE, attempt_requests
from labeler.llm.parse import normalise_label, parse_label
from labeler.llm.text import active_token_values, numbered, render_window
from labeler.types import FeatureExamples, LabelCandidate, Window

MAX_LABEL_TOKENS = 60  # a 15-word label is ~25 tokens; room for a stray "Label:" prefix
SAMPLING_TEMPERATURE = 0.8  # several candidates need sampling; one candidate is asked greedily
TOP_UP_SEED = 1000  # seeds of single requests topping up an endpoint that ignored n


class LLMExplainer:
    """Labels from an OpenAI-compatible chat model (LabelConfig.explain_model or LABELER_EXPLAIN_MODEL)."""

    name: ClassVar[str] = "llm"
    needs_llm: ClassVar[bool] = True

    def __init__(self, *, config: LabelConfig, llm: LLMContext | None, max_attempts: int = MAX_ATTEMPTS) -> None:
        if llm is None:
            raise ConfigError(
                "the llm explainer needs an endpoint: set LABELER_LLM_BASE_URL (or LABELER_EXPLAIN_BASE_URL), "
                "or choose explainer 'offline'"
            )
        self.client = llm.explain
        self.show_values = config.show_activation_values
        self.max_attempts = max_attempts
        # plans made for the ledger prefetch, kept until `explain` uses them (prompts are built once)
        self._plans: dict[tuple[int, int], tuple[Sequence[Window], int, list[ChatRequest], list[ChatRequest]]] = {}

    @classmethod
    def from_config(cls, *, config: LabelConfig, llm: LLMContext | None) -> "LLMExplainer":
        return cls(config=config, llm=llm)

    def messages(self, feature: FeatureExamples, shown: Sequence[Window]) -> tuple[tuple[str, str], ...]:
        system = prompt.SYSTEM.format(values=prompt.VALUES_NOTE if self.show_values else "")
        feature_max = feature.stats.max_activation
        lines = []
        for window in shown:
            line = render_window(window)
            if self.show_values:
                line += "\n" + prompt.VALUES_LINE.format(values=active_token_values(window, feature_max))
            lines.append(line)
        return (("system", system), ("user", f"{prompt.HEADER}\n{numbered(lines)}"))

    def _attempts(self, messages, n_candidates: int) -> list[ChatRequest]:
        return attempt_requests(
            self.client,
            messages,
            attempts=self.max_attempts,
            temperature=0.0 if n_candidates == 1 else SAMPLING_TEMPERATURE,
            max_tokens=MAX_LABEL_TOKENS,
            n=n_candidates,
        )

    def _top_ups(self, messages, count: int) -> list[ChatRequest]:
        return [
            self.client.request(
                messages, temperature=max(SAMPLING_TEMPERATURE, RETRY_TEMPERATURE), max_tokens=MAX_LABEL_TOKENS, seed=TOP_UP_SEED + j
            )
            for j in range(count)
        ]

    def _plan(self, feature: FeatureExamples, shown: Sequence[Window], n_candidates: int):
        """(attempt requests, top-up requests), from the memo when planning already built them for `shown`."""
        memo = self._plans.pop((feature.sae_id, feature.feature_index), None)
        if memo is not None and memo[0] is shown and memo[1] == n_candidates:
            return memo[2], memo[3]
        messages = self.messages(feature, shown)
        top_ups = self._top_ups(messages, n_candidates - 1) if n_candidates > 1 else []
        return self._attempts(messages, n_candidates), top_ups

    async def planned_requests(self, feature: FeatureExamples, shown: Sequence[Window], n_candidates: int) -> list[ChatRequest]:
        """Every request `explain` may send, so a batch can look them all up in the ledger at once."""
        if not shown:
            return []
        attempts, top_ups = self._plan(feature, shown, n_candidates)
        self._plans[(feature.sae_id, feature.feature_index)] = (shown, n_candidates, attempts, top_ups)
        return attempts + top_ups

    async def explain(self, feature: FeatureExamples, shown: Sequence[Window], n_candidates: int) -> list[LabelCandidate]:
        if not shown:
            raise ExplanationParseError(f"feature {feature.feature_index}: no windows to show the explainer")
        attempts, top_ups = self._plan(feature, shown, n_candidates)
        candidates: list[LabelCandidate] = []
        seen: set[str] = set()
        reasons: list[str] = []
        for request in attempts:
            answers = [(request, await self.client.complete(request))]
            missing = n_candidates - len(answers[0][1].choices)
            if n_candidates > 1 and missing > 0:  # the endpoint ignored n
                extra = top_ups[:missing]
                replies = await asyncio.gather(*(self.client.complete(r) for r in extra))
                answers += list(zip(extra, replies))
            for req, answer in answers:
                self._collect(feature, req, answer, candidates, seen, reasons)
            if candidates:
                return candidates[:n_candidates]
        raise ExplanationParseError(
            f"feature {feature.feature_index}: no usable label in {self.max_attempts} attempts ({'; '.join(reasons)})"
        )

    def _collect(self, feature, request: ChatRequest, answer: ChatAnswer, candidates, seen, reasons) -> None:
        n = max(1, len(answer.choices))
        if not answer.choices:
            reasons.append("the answer has no choices")
        for choice in answer.choices:
            try:
                text = parse_label(choice.text)
            except ExplanationParseError as exc:
                reasons.append(str(exc))
                continue
            key = normalise_label(text)
            if key in seen:
                continue
            seen.add(key)
            candidates.append(
                LabelCandidate(
                    feature_index=feature.feature_index,
                    text=text,
                    source="llm",
                    method=self.name,
                    model=self.client.model,
                    prompt_hash=request.hash,
                    prompt_tokens=answer.prompt_tokens // n,
                    completion_tokens=answer.completion_tokens // n,
                    cost_usd=answer.cost_usd / n,
                )
            )
