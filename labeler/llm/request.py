"""A chat request and its answer as plain frozen values, and the hash that makes requests cacheable.

The hash covers everything that changes what the model would say (model, messages, sampling, n,
logprobs) and nothing else, so the same question asked again is answered from the ledger for free.
"""

from __future__ import annotations

import hashlib
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

    Logprobs become [token, logprob, [[alt, logprob], ...]] triples, rounded to 1e-5 (a probability to
    0.001 %): a fraction of OpenAI's verbose form, and of the ledger's size.
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
                "logprobs": None if content is None else _compact_logprobs(content),
            }
        )
    return {"model": raw.get("model", ""), "choices": choices}


def _compact_logprobs(content: list[dict[str, Any]]) -> list[list[Any]]:
    """Every token of an answer passes through here: the strict form first, the forgiving one when an
    endpoint leaves fields out."""
    try:
        return [
            [t["token"], round(t["logprob"], 5), [[a["token"], round(a["logprob"], 5)] for a in t["top_logprobs"] or ()]]
            for t in content
        ]
    except (KeyError, TypeError):
        return [
            [
                t.get("token") or "",
                round(t.get("logprob") or 0.0, 5),
                [[a.get("token") or "", round(a.get("logprob") or 0.0, 5)] for a in t.get("top_logprobs") or ()],
            ]
            for t in content
        ]


def choices_from_json(response: dict[str, Any]) -> tuple[Choice, ...]:
    out = []
    for c in response.get("choices", []):
        lp = c.get("logprobs")
        out.append(
            Choice(
                text=c.get("text", ""),
                finish_reason=c.get("finish_reason"),
                logprobs=None if lp is None else tuple(TokenLogprob(tok, lp_, tuple(map(tuple, top))) for tok, lp_, top in lp),
            )
        )
    return tuple(out)
