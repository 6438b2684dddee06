"""Bounded retries for answers that arrive but cannot be used (empty, garbage, wrong length...).

Transport failures (429, 5xx, timeouts) are retried inside the openai client on the *same* request.
A malformed answer was paid for, so asking the identical request again would pay for the identical
answer (and the ledger would replay it anyway); each retry is therefore a *different* request: a new
seed, sampled at a non-zero temperature. The whole plan is known up front, so a batch can prefetch
every request it might send from the ledger with one query.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from labeler.errors import ExplanationParseError
from labeler.llm.client import LLMClient
from labeler.llm.request import ChatAnswer, ChatRequest

T = TypeVar("T")

MAX_ATTEMPTS = 3
RETRY_TEMPERATURE = 0.7


def attempt_requests(
    client: LLMClient,
    messages: tuple[tuple[str, str], ...],
    *,
    attempts: int = MAX_ATTEMPTS,
    temperature: float = 0.0,
    max_tokens: int = 100,
    n: int = 1,
    logprobs: bool = False,
    top_logprobs: int | None = None,
) -> list[ChatRequest]:
    """Attempt k asks with seed k; retries sample at RETRY_TEMPERATURE or more so they can differ."""
    return [
        client.request(
            messages,
            temperature=temperature if k == 0 else max(temperature, RETRY_TEMPERATURE),
            max_tokens=max_tokens,
            n=n,
            seed=k,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
        )
        for k in range(attempts)
    ]


async def first_parsed(
    client: LLMClient, requests: Sequence[ChatRequest], parse: Callable[[ChatAnswer], T], *, what: str
) -> tuple[T, ChatAnswer]:
    """Send the requests in order until an answer parses; ExplanationParseError with every reason if none does."""
    reasons = []
    for request in requests:
        answer = await client.complete(request)
        try:
            return parse(answer), answer
        except ExplanationParseError as exc:
            reasons.append(str(exc))
    raise ExplanationParseError(f"{what}: no usable answer in {len(requests)} attempts ({'; '.join(reasons)})")
