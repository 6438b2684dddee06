"""The one LLM client: an `AsyncOpenAI` per endpoint behind the ledger, the budget and a shared semaphore.

Order of a call: ledger (a hit costs nothing and no HTTP) -> an identical request already in flight is
awaited, not sent again -> budget reservation -> semaphore slot -> HTTP. 429/5xx/timeouts are retried by
the openai client itself (`max_retries`, exponential backoff, honouring retry-after). Its errors become
`LLMError` (or `ConfigError` for a key / URL / model that can never work) here, at the boundary.

Kept lean on purpose: on 2 cores the client's own CPU is the ceiling at high concurrency, so the body is
read as JSON with `with_raw_response` instead of being built into pydantic objects.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import openai

from labeler.errors import ConfigError, LLMError
from labeler.llm.budget import Budget, Prices, current_account, estimate_prompt_tokens
from labeler.llm.ledger import Ledger
from labeler.llm.request import ChatAnswer, ChatRequest, LedgerEntry, normalise_response

try:  # openai >= 3 speaks httpx2; earlier versions httpx
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _httpx

LOGPROBS_PROBE = (("user", "Answer with the single word yes."),)


@dataclass(frozen=True)
class Endpoint:
    """Where one stage sends its requests: an OpenAI-compatible base URL, its key and a model."""

    base_url: str
    api_key: str
    model: str


@dataclass(frozen=True)
class ClientOptions:
    """Limits shared by every stage of one worker process."""

    concurrency: int = 64
    timeout_s: float = 60.0
    max_retries: int = 5
    prices: Prices = field(default_factory=Prices)


def open_http(endpoint: Endpoint, options: ClientOptions) -> openai.AsyncOpenAI:
    """One AsyncOpenAI whose connection pool holds exactly `concurrency` connections."""
    limits = _httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
    http = openai.DefaultAsyncHttpxClient(limits=limits, timeout=options.timeout_s)
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        max_retries=options.max_retries,
        timeout=options.timeout_s,
        http_client=http,
    )


class LLMClient:
    """Chat completions for one stage (explain or score) of one job."""

    def __init__(self, endpoint: Endpoint, *, options: ClientOptions, ledger: Ledger, budget: Budget) -> None:
        self.endpoint = endpoint
        self.options = options
        self.ledger = ledger
        self.budget = budget
        self._http: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future] = {}
        self._logprobs: bool | None = None

    @property
    def model(self) -> str:
        return self.endpoint.model

    def connect(self, http: openai.AsyncOpenAI, semaphore: asyncio.Semaphore, inflight: dict) -> None:
        self._http, self._semaphore, self._inflight = http, semaphore, inflight

    def disconnect(self) -> None:
        self._http = self._semaphore = None

    def request(
        self,
        messages: tuple[tuple[str, str], ...],
        *,
        temperature: float = 0.0,
        max_tokens: int = 100,
        n: int = 1,
        seed: int | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
    ) -> ChatRequest:
        return ChatRequest(
            model=self.model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            n=n,
            seed=seed,
            logprobs=logprobs,
            top_logprobs=top_logprobs if logprobs else None,
        )

    async def complete(self, request: ChatRequest) -> ChatAnswer:
        """The answer to `request`: from the ledger when it was paid for before, else from the endpoint."""
        key = request.hash
        entry = self.ledger.get(key)
        if entry is not None:
            return entry.answer(cached=True)
        pending = self._inflight.get(key)
        if pending is not None:
            return (await asyncio.shield(pending)).answer(cached=True)
        if self._http is None:
            raise RuntimeError("LLM client is not connected; use `async with llm_context:` around calls")
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume_exception)
        self._inflight[key] = future
        try:
            entry = await self._send(request)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(entry)
        finally:
            del self._inflight[key]
        account = current_account.get()
        if account is not None:
            account.add(entry)
        return entry.answer(cached=False)

    async def _send(self, request: ChatRequest) -> LedgerEntry:
        prices = self.options.prices
        reserved_tokens = estimate_prompt_tokens(request)
        reserved_cost = prices.cost(reserved_tokens, request.max_tokens * request.n)
        self.budget.reserve(reserved_tokens, reserved_cost)
        try:
            async with self._semaphore:
                started = time.perf_counter()
                raw = await self._http.chat.completions.with_raw_response.create(**request.payload)
                latency_s = time.perf_counter() - started
            body: dict[str, Any] = json.loads(raw.http_response.content)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise LLMError(
                f"LLM endpoint {self.endpoint.base_url} unreachable after {self.options.max_retries} retries "
                f"({type(exc).__name__}: {exc}); check the URL, or raise LABELER_LLM_TIMEOUT_S / LABELER_LLM_MAX_RETRIES"
            ) from exc
        except (ValueError, openai.OpenAIError) as exc:
            raise LLMError(f"LLM endpoint {self.endpoint.base_url} sent an unreadable response: {exc}") from exc
        finally:
            self.budget.release(reserved_tokens, reserved_cost)
        usage = body.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost = prices.cost(prompt_tokens, completion_tokens)
        self.budget.spend(prompt_tokens, cost)
        entry = LedgerEntry(
            request_hash=request.hash,
            model=self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency_s,
            cost_usd=cost,
            attempts=raw.retries_taken + 1,
            response=normalise_response(body),
            job_id=self.ledger.job_id,
        )
        self.ledger.record(entry)
        return entry

    def _status_error(self, exc: openai.APIStatusError) -> Exception:
        where = f"LLM endpoint {self.endpoint.base_url} (model {self.model!r})"
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return ConfigError(f"{where} refused the API key ({exc.status_code}); set LABELER_LLM_API_KEY")
        if isinstance(exc, openai.NotFoundError):
            return ConfigError(
                f"{where} answered 404: wrong base URL (it should end in /v1) or unknown model; "
                "check LABELER_LLM_BASE_URL and LABELER_LLM_MODEL"
            )
        retried = f" after {self.options.max_retries} retries" if exc.status_code == 429 or exc.status_code >= 500 else ""
        return LLMError(f"{where} failed{retried}: {exc.status_code} {exc.message}")

    async def supports_logprobs(self) -> bool:
        """Whether this endpoint returns token logprobs: one probe per client, itself cached in the ledger."""
        if self._logprobs is None:
            probe = self.request(LOGPROBS_PROBE, max_tokens=1, logprobs=True, top_logprobs=2)
            self.ledger.prefetch([probe.hash])
            try:
                answer = await self.complete(probe)
            except LLMError as exc:
                if not isinstance(exc.__cause__, openai.BadRequestError):
                    raise
                self._logprobs = False  # the endpoint rejects the logprobs option itself
            else:
                self._logprobs = answer.has_logprobs
        return self._logprobs


def _consume_exception(future: asyncio.Future) -> None:
    """Mark a shared future's exception as seen: the caller that sent the request already raised it."""
    if not future.cancelled():
        future.exception()
