"""The one LLM client: one `AsyncOpenAI` per endpoint behind the ledger, the budget and the slots.

Order of a call: ledger (a hit costs nothing and no HTTP) -> an identical request already in flight is
awaited, not sent again -> budget reservation -> a slot (by priority, see slots.py) -> HTTP. 429/5xx/timeouts are retried by
the openai client itself (`max_retries`, exponential backoff, honouring retry-after). Its errors become
`LLMError` (or `ConfigError` for a key / URL / model that can never work) here, at the boundary.

Kept lean on purpose: on 2 cores the client's own CPU is the ceiling at high concurrency (64 requests in
flight at 200 ms is 320 calls/s). So the openai client runs on its aiohttp transport (the `aiohttp`
extra, which the openai docs recommend for concurrency: measured 1.7 instead of 2.4 ms of CPU per call
here), and the request goes through its generic `post` with the body already serialised: the same
canonical bytes are the ledger's hash (`ChatRequest.body`), so a request is encoded once, with orjson,
and the answer is decoded with orjson. Auth, timeouts and retries are the openai client's as usual; the
retry count comes back in the `x-stainless-retry-count` request header.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import orjson

from labeler.errors import ConfigError, LLMError
from labeler.llm.budget import Budget, Prices, current_account, estimate_prompt_tokens
from labeler.llm.ledger import Ledger, consume_exception
from labeler.llm.request import ChatAnswer, ChatRequest, LedgerEntry, normalise_response
from labeler.llm.slots import Slots

LOGPROBS_PROBE = (("user", "Answer with the single word yes."),)


@dataclass(frozen=True)
class Endpoint:
    """Where one stage sends its requests: an OpenAI-compatible base URL, its key and a model."""

    base_url: str
    api_key: str
    model: str


MAX_RETRY_WAIT_S = 120.0  # the longest Retry-After the openai client honours between two attempts


@dataclass(frozen=True)
class ClientOptions:
    """Limits shared by every stage of one worker process."""

    concurrency: int = 64
    timeout_s: float = 60.0
    max_retries: int = 5
    prices: Prices = field(default_factory=Prices)

    @property
    def deadline_s(self) -> float:
        """The longest one call may take, every attempt and every wait between them included.

        The openai client's timeout bounds each connect and each read, not an attempt: an endpoint that
        sends its answer a few bytes at a time never trips it, and would hold a slot for as long as it likes.
        """
        return (self.timeout_s + MAX_RETRY_WAIT_S) * (self.max_retries + 1)


# The client's informational platform headers (language, OS, runtime versions...): every header is parsed
# and normalised several times per request on the way through httpx2, 0.2 ms of CPU per call for these.
PLATFORM_HEADERS = (
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Async",
)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client of this process shares (system CAs, SSL_CERT_FILE honoured).

    Built once: loading the CA bundle costs ~20 ms, which every batch would otherwise pay when it opens
    its clients. An SSLContext is safe to share between connections and threads.
    """
    return httpx2.create_ssl_context(verify=True, trust_env=True)


MAX_RESPONSE_BYTES = 8 << 20  # a chat completion here is kilobytes, ~100 KB with logprobs; an endpoint that
# ignores max_tokens must not fill memory (64 answers in flight) and the ledger with megabytes of text


class ResponseTooLarge(openai.OpenAIError):
    """An OpenAIError, so the openai client passes it on at once instead of retrying the read."""


class _CappedStream(httpx2.AsyncByteStream):
    """A response body that stops being read past MAX_RESPONSE_BYTES, announced length or not."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def __aiter__(self):
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                raise ResponseTooLarge(f"the answer is larger than {self.limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _cap_response_size(response: httpx2.Response) -> None:
    """httpx response hook: runs before the body is read."""
    response.stream = _CappedStream(response.stream, MAX_RESPONSE_BYTES)


def open_http(endpoint: Endpoint, options: ClientOptions) -> openai.AsyncOpenAI:
    """One AsyncOpenAI on aiohttp whose pool holds `concurrency` connections; open it inside the event loop."""
    limits = httpx2.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        max_retries=options.max_retries,
        timeout=options.timeout_s,
        default_headers={name: openai.Omit() for name in PLATFORM_HEADERS},
        http_client=openai.DefaultAioHttpClient(
            limits=limits, timeout=options.timeout_s, verify=tls_context(), event_hooks={"response": [_cap_response_size]}
        ),
    )


class LLMClient:
    """Chat completions for one stage (explain or score) of one job."""

    def __init__(self, endpoint: Endpoint, *, options: ClientOptions, ledger: Ledger, budget: Budget) -> None:
        self.endpoint = endpoint
        self.options = options
        self.ledger = ledger
        self.budget = budget
        self._http: openai.AsyncOpenAI | None = None
        self._slots: Slots | None = None
        self._inflight: dict[str, asyncio.Future] = {}
        self._logprobs: bool | None = None

    @property
    def model(self) -> str:
        return self.endpoint.model

    def connect(self, http: openai.AsyncOpenAI, slots: Slots, inflight: dict) -> None:
        self._http, self._slots, self._inflight = http, slots, inflight

    def disconnect(self) -> None:
        self._http = self._slots = None

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
        future.add_done_callback(consume_exception)
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
        reserved = False
        try:
            async with self._slots.hold():
                # reserved at the slot: a request waiting for one holds nothing back, and is checked against
                # what the job spent meanwhile (other workers' spending arrives through Budget.resync)
                self.budget.reserve(reserved_tokens, reserved_cost)
                reserved = True
                started = time.perf_counter()
                # Content-Type: application/json is one of the client's default headers
                async with asyncio.timeout(self.options.deadline_s):
                    response = await self._http.post("/chat/completions", content=request.body, cast_to=httpx2.Response)
                latency_s = time.perf_counter() - started
            # The slot just went to a waiting request; let it go out before this answer's processing,
            # which otherwise runs first (answers arrive in waves: a wave's processing is the slot's idle time).
            await asyncio.sleep(0)
            body: dict[str, Any] = orjson.loads(response.content)
            retries = int(response.request.headers.get("x-stainless-retry-count") or 0)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except ResponseTooLarge as exc:
            raise LLMError(
                f"LLM endpoint {self.endpoint.base_url} (model {self.model!r}): {exc}; "
                f"is it ignoring max_tokens ({request.max_tokens})?"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"LLM endpoint {self.endpoint.base_url} unreachable after {self.options.max_retries} retries "
                f"({type(exc).__name__}: {exc}); check the URL, or raise LABELER_LLM_TIMEOUT_S / LABELER_LLM_MAX_RETRIES"
            ) from exc
        except TimeoutError as exc:  # asyncio.timeout's, above: the openai client's own is APITimeoutError
            raise LLMError(
                f"LLM endpoint {self.endpoint.base_url} did not finish answering within {self.options.deadline_s:g} s, "
                "all attempts included (an endpoint sending its answer very slowly?)"
            ) from exc
        except (ValueError, openai.OpenAIError) as exc:
            raise LLMError(f"LLM endpoint {self.endpoint.base_url} sent an unreadable response: {exc}") from exc
        finally:
            if reserved:
                self.budget.release(reserved_tokens, reserved_cost)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            error = body.get("error") if isinstance(body, dict) else None  # some proxies answer 200 {"error": ...}
            raise LLMError(
                f"LLM endpoint {self.endpoint.base_url} (model {self.model!r}) answered without choices: "
                f"{error or str(body)[:200]}"
            )
        try:
            usage = body.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            response = normalise_response(body)
        except (AttributeError, TypeError, ValueError) as exc:  # fields of the wrong type
            raise LLMError(
                f"LLM endpoint {self.endpoint.base_url} (model {self.model!r}) sent a malformed completion: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        cost = prices.cost(prompt_tokens, completion_tokens)
        self.budget.spend(prompt_tokens, cost)
        entry = LedgerEntry(
            request_hash=request.hash,
            model=self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency_s,
            cost_usd=cost,
            attempts=retries + 1,
            response=response,
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
            await self.ledger.load([probe.hash], coalesce=False)
            try:
                answer = await self.complete(probe)
            except LLMError as exc:
                if not isinstance(exc.__cause__, openai.BadRequestError):
                    raise
                self._logprobs = False  # the endpoint rejects the logprobs option itself
            else:
                self._logprobs = answer.has_logprobs
        return self._logprobs
