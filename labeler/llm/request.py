"""A chat request and its answer as plain frozen values, and the hash that makes requests cacheable.

The hash covers everything that changes what the model would say (model, messages, sampling, n,
logprobs) and nothing else, so the same question asked again is answered from the ledger for free.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import orjson


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request. `messages` are (role, content) pairs."""

    model: str
    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 100
    n: int = 1
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None

    @cached_property
    def payload(self) -> dict[str, Any]:
        """Keyword arguments for `chat.completions.create`, without unset options."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": role, "content": content} for role, content in self.messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.n != 1:
            body["n"] = self.n
        if self.seed is not None:
            body["seed"] = self.seed
        if self.logprobs:
            body["logprobs"] = True
            if self.top_logprobs:
                body["top_logprobs"] = self.top_logprobs
        return body

    @cached_property
    def body(self) -> bytes:
        """The payload as canonical JSON (sorted keys, compact, UTF-8): what is sent, and what is hashed."""
        return orjson.dumps(self.payload, option=orjson.OPT_SORT_KEYS)

    @cached_property
    def hash(self) -> str:
        """sha256 of the canonical JSON body: the ledger's key."""
        return hashlib.sha256(self.body).hexdigest()

    @property
    def prompt_chars(self) -> int:
        return sum(len(content) for _, content in self.messages)


class TokenLogprob(NamedTuple):
    """One generated token, its log probability and the most likely alternatives at that position.

    A NamedTuple, not a dataclass: an answer with logprobs holds one per generated token, built on
    every replay, and tuples are several times cheaper to create.
    """

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class Choice(NamedTuple):
    text: str
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class ChatAnswer:
    """What came back for one request, from the endpoint or from the ledger (`cached`)."""

    request_hash: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float = 0.0
    attempts: int = 1
    cached: bool = False
    model: str = ""

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def has_logprobs(self) -> bool:
        return bool(self.choices) and self.choices[0].logprobs is not None


@dataclass(frozen=True)
class LedgerEntry:
    """One paid call as the `llm_calls` table keeps it; `response` is the normalised answer (JSON)."""

    request_hash: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float
    attempts: int
    response: dict[str, Any] = field(default_factory=dict)
    job_id: int | None = None

    def answer(self, *, cached: bool) -> ChatAnswer:
        return ChatAnswer(
            request_hash=self.request_hash,
            choices=choices_from_json(self.response),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd,
            latency_s=self.latency_s,
            attempts=self.attempts,
            cached=cached,
            model=self.response.get("model", self.model),
        )


def normalise_response(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep what a later replay needs (text, finish reason, logprobs) in a compact JSON form.

    Logprobs are stored column-wise, rounded to 1e-5 (a probability to 0.001 %):
    {"tokens": [...], "logprobs": [...], "top_counts": [...], "top_tokens": [...], "top_logprobs": [...]},
    the alternatives of all positions concatenated. Five lists per answer instead of seven per token:
    answers stay in memory until their batch is written, and a garbage collection walks every list.
    """
    choices = []
    for choice in raw.get("choices") or []:
        message = choice.get("message") or {}
        logprobs = choice.get("logprobs")
        content = logprobs.get("content") if isinstance(logprobs, dict) else None
        choices.append(
            {
                "text": message.get("content") or "",
                "finish_reason": choice.get("finish_reason"),
                "logprobs": None if content is None else _columns(content),
            }
        )
    return {"model": raw.get("model", ""), "choices": choices}


def _columns(content: list[dict[str, Any]]) -> dict[str, list]:
    """The OpenAI per-token objects as columns; missing fields read as empty (some endpoints leave them out)."""
    tokens, logprobs, counts, top_tokens, top_logprobs = [], [], [], [], []
    for t in content:
        tokens.append(t.get("token") or "")
        logprobs.append(round(t.get("logprob") or 0.0, 5))
        top = t.get("top_logprobs") or ()
        counts.append(len(top))
        for a in top:
            top_tokens.append(a.get("token") or "")
            top_logprobs.append(round(a.get("logprob") or 0.0, 5))
    return {"tokens": tokens, "logprobs": logprobs, "top_counts": counts, "top_tokens": top_tokens, "top_logprobs": top_logprobs}


def _token_logprobs(stored: dict[str, list] | list) -> tuple[TokenLogprob, ...]:
    if isinstance(stored, list):  # ledger rows written before the column-wise form: [token, logprob, [[alt, logprob]...]]
        return tuple(TokenLogprob(tok, lp, tuple(map(tuple, top))) for tok, lp, top in stored)
    alternatives = zip(stored["top_tokens"], stored["top_logprobs"])
    return tuple(
        TokenLogprob(tok, lp, tuple(itertools.islice(alternatives, n)))
        for tok, lp, n in zip(stored["tokens"], stored["logprobs"], stored["top_counts"])
    )


def choices_from_json(response: dict[str, Any]) -> tuple[Choice, ...]:
    out = []
    for c in response.get("choices", []):
        lp = c.get("logprobs")
        out.append(Choice(text=c.get("text", ""), finish_reason=c.get("finish_reason"), logprobs=None if lp is None else _token_logprobs(lp)))
    return tuple(out)
