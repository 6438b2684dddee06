"""A light OpenAI-compatible chat server on loopback: the paid LLM's stand-in for tests and benchmarks.

Plain asyncio and the standard library only (no web framework), so it costs little CPU when a benchmark
runs it in another process. It answers sae-labeler's prompts deterministically, the way a careful model
would, so scorers can be checked for real values:

- explain: the most frequent token marked <<like this>> becomes `the word "class"`;
- detection: a context counts as active when it contains a quoted term of the label;
- fuzzing: a marking is correct when a marked token is a quoted term of the label;
- simulation: 10 on tokens that are terms of the label, else 0.

It injects faults on purpose: 429 (with retry-after-ms), 500, timeout (hangs until the client gives up),
200 answers that are useless (garbage, truncated JSON, empty, refusal, too long), and, when asked for,
a right answer trickled a few bytes at a time (each read is quick, the whole takes minutes). Whether a request
fails is decided by hash(request body, how many times that exact body was received), so a retry
of the same request can succeed and a run is reproducible. `stats()` (or GET /stats) counts requests and
how often each distinct request was *paid* (answered 200), which is how tests check that no identical
request is paid for twice.

    python tests/llm_server.py --port 0 --latency-ms 200 --fault-rate 0.2   # prints its port
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import math
import re
import sys
import threading
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field

import orjson

TRANSPORT_FAULTS = ("429", "500", "timeout")
CONTENT_FAULTS = ("garbage", "truncated", "empty", "refusal", "long")
SLOW_FAULTS = ("trickle",)  # a right answer sent a few bytes at a time: no single read ever times out
ALL_FAULTS = TRANSPORT_FAULTS + CONTENT_FAULTS + SLOW_FAULTS
TRICKLE_BYTES, TRICKLE_EVERY_S = 8, 0.1
DEFAULT_FAULTS = ("429", "500", "timeout", "garbage", "truncated")

LABEL_TEMPLATES = (
    'the word "{t}"',
    'the token "{t}"',
    'occurrences of "{t}"',
    'text containing "{t}"',
    'mentions of "{t}"',
)
STOPWORDS = frozenset("the a an of word words token tokens text containing mentions occurrences and or".split())

_MARKED = re.compile(r"<<(.+?)>>")
_QUOTED = re.compile(r"[\"“”'‘’]([^\"“”'‘’]+)[\"“”'‘’]")
_NUMBERED = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)
_ANSWER_TOKENS = re.compile(r"\d+|\w+|\s+|[^\w\s]")
_arrived: ContextVar[float] = ContextVar("arrived")  # when the request being answered was read (loop time)


@dataclass
class ServerConfig:
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULTS
    fault_only_seed: int | None = None  # inject faults only into requests with this seed (None: any)
    fault_first_n: int | None = None  # instead of fault_rate: the first n receptions of each request fail
    fault_only_task: str | None = None  # inject faults only into one task: explain | detection | fuzzing | simulation
    ignore_n: bool = False  # behave like an endpoint that ignores `n` (always one choice)
    require_key: str | None = None  # answer 401 unless this bearer key is sent
    logprobs: bool = True  # False: behave like an endpoint that ignores `logprobs`
    retry_after_ms: int = 10
    hang_s: float = 30.0  # a "timeout" fault waits this long or until the client hangs up

    def __post_init__(self) -> None:
        unknown = set(self.fault_kinds) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(ALL_FAULTS)}")


@dataclass
class ServerStats:
    received: int = 0
    by_outcome: Counter = field(default_factory=Counter)
    seen: Counter = field(default_factory=Counter)  # sha256 of the request body -> receptions
    paid: Counter = field(default_factory=Counter)  # sha256 of the request body -> 200 answers

    def as_dict(self) -> dict:
        return {
            "received": self.received,
            "by_outcome": dict(self.by_outcome),
            "paid_total": sum(self.paid.values()),
            "distinct_paid": len(self.paid),
            "max_paid_per_request": max(self.paid.values(), default=0),
        }


# ---------------------------------------------------------------- answers that follow the prompt


def label_terms(label: str) -> set[str]:
    quoted = _QUOTED.findall(label)
    if quoted:
        return {w for q in quoted for w in re.findall(r"\w+", q.lower())}
    return {w for w in re.findall(r"\w+", label.lower()) if w not in STOPWORDS}


def _section_lines(user: str) -> list[tuple[int, str]]:
    return [(int(n), text) for n, text in _NUMBERED.findall(user)]


def _label_of(user: str) -> str:
    first = user.split("\n", 1)[0]
    return first.split(":", 1)[1].strip() if first.lower().startswith("label:") else ""


def answer_explain(user: str, choice: int) -> str:
    counts = Counter(
        span.strip().lower() for _, text in _section_lines(user) for span in _MARKED.findall(text) if span.strip()
    )
    if not counts:
        return "no clear pattern"
    top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return LABEL_TEMPLATES[choice % len(LABEL_TEMPLATES)].format(t=top)


def judge_detection(user: str) -> list[float]:
    terms = label_terms(_label_of(user))
    out = []
    for _, text in _section_lines(user):
        words = set(re.findall(r"\w+", text.lower()))
        out.append(len(terms & words) / len(terms) if terms else 0.0)
    return out


def judge_fuzzing(user: str) -> list[float]:
    terms = label_terms(_label_of(user))
    out = []
    for _, text in _section_lines(user):
        marked = {w for span in _MARKED.findall(text) for w in re.findall(r"\w+", span.lower())}
        out.append(1.0 if terms & marked else 0.0)
    return out


def simulate(user: str) -> list[list[int]]:
    terms = label_terms(_label_of(user))
    predictions = []
    for _, text in _section_lines(user):
        try:
            tokens = json.loads(text)
        except ValueError:
            tokens = []
        predictions.append([10 if str(t).strip().lower().lstrip("#") in terms else 0 for t in tokens])
    return predictions


def task_of(system: str) -> str:
    text = system.lower()
    if "simulate" in text:
        return "simulation"
    if "judge" in text:
        return "fuzzing" if "marked tokens" in text else "detection"
    return "explain"


def answer_for(system: str, user: str, choice: int) -> tuple[str, list[float] | None]:
    """The answer text, and per-number confidence for the 0/1 judges (used for logprobs)."""
    task = task_of(system)
    if task == "simulation":
        return json.dumps(simulate(user), separators=(",", ":")), None
    if task in ("detection", "fuzzing"):
        probs = judge_fuzzing(user) if task == "fuzzing" else judge_detection(user)
        return json.dumps([int(p >= 0.5) for p in probs]), probs
    return answer_explain(user, choice), None


def _lp(p: float) -> float:
    return math.log(min(max(p, 1e-6), 1 - 1e-6))


def answer_logprobs(text: str, probs: list[float] | None, top_n: int) -> list[dict]:
    """Token logprobs for the answer: 0/1 judges get P(1) from their confidence, numbers 0-10 a sure guess.

    "bytes" is left null (allowed by the API): nobody here reads it, and it is not free. Tokens without
    a judge's confidence are answered from a cache: this runs on every judged call and must stay light.
    """
    content = []
    judge_index = 0
    for tok in _ANSWER_TOKENS.findall(text):
        if probs is not None and tok in ("0", "1") and judge_index < len(probs):
            p1 = 0.05 + 0.9 * probs[judge_index]
            judge_index += 1
            top = sorted([("1", _lp(p1)), ("0", _lp(1 - p1))], key=lambda t: -t[1])
            content.append(_token_logprobs(tok, tuple(top), top_n))
        else:
            content.append(_plain_token_logprobs(tok, top_n))
    return content


def _token_logprobs(tok: str, top: tuple[tuple[str, float], ...], top_n: int) -> dict:
    chosen = next(lp for t, lp in top if t == tok)
    alternatives = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top[:top_n]]
    return {"token": tok, "logprob": chosen, "bytes": None, "top_logprobs": alternatives}


@functools.lru_cache(maxsize=4096)
def _plain_token_logprobs(tok: str, top_n: int) -> dict:
    """Shared between answers: never mutated, only serialised."""
    if tok.isdigit():
        other = "0" if tok != "0" else "10"
        return _token_logprobs(tok, ((tok, _lp(0.9)), (other, _lp(0.1))), top_n)
    return _token_logprobs(tok, ((tok, 0.0),), top_n)


def faulty_content(kind: str, good: str) -> str:
    if kind == "garbage":
        return "@@## %%&& **!! ~~"
    if kind == "truncated":
        return json.dumps({"label": good})[: max(3, len(good) // 2)] if not good.startswith("[") else good[: len(good) // 2]
    if kind == "empty":
        return ""
    if kind == "refusal":
        return "I'm sorry, but I can't help with that request."
    if kind == "long":
        return " ".join(["this feature seems to respond to many different things in the text"] * 4)
    raise ValueError(kind)


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


# ---------------------------------------------------------------- HTTP


class Trickle(bytes):
    """A response body to send TRICKLE_BYTES at a time, every TRICKLE_EVERY_S."""



class LLMTestServer:
    """The server; `start()` runs it on a background thread (tests), `serve()` in the current loop."""

    def __init__(self, config: ServerConfig | None = None, *, port: int = 0, **overrides) -> None:
        self.config = config or ServerConfig(**overrides)
        self.stats_data = ServerStats()
        self.port = port
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        with self._lock:
            return self.stats_data.as_dict()

    def reset_stats(self) -> None:
        with self._lock:
            self.stats_data = ServerStats()

    # lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve(self) -> None:
        await self.open()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> "LLMTestServer":
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.open())
            self._ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="llm-test-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "LLMTestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # one connection ----------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                _arrived.set(asyncio.get_running_loop().time())
                status, payload, extra = await self._route(method, path, headers, body, reader)
                if status == 0:  # hung up on purpose
                    return
                data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
                head_out = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}", "content-type: application/json"]
                head_out += [f"{k}: {v}" for k, v in extra.items()]
                head_out += [f"content-length: {len(data)}", "connection: keep-alive", "", ""]
                writer.write("\r\n".join(head_out).encode())
                chunks = [data[i : i + TRICKLE_BYTES] for i in range(0, len(data), TRICKLE_BYTES)] if isinstance(payload, Trickle) else [data]
                for i, chunk in enumerate(chunks):
                    if i:
                        await asyncio.sleep(TRICKLE_EVERY_S)
                    writer.write(chunk)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _route(self, method: str, path: str, headers: dict, body: bytes, reader: asyncio.StreamReader):
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "tests"}]}, {}
        if method == "GET" and path.endswith("/stats"):
            return 200, self.stats(), {}
        if method == "POST" and path.endswith("/chat/completions"):
            if self.config.require_key is not None and headers.get("authorization") != f"Bearer {self.config.require_key}":
                return 401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}}, {}
            return await self._chat(body, reader)
        return 404, {"error": {"message": f"no route {method} {path}"}}, {}

    def _decide_fault(self, request: dict, digest: str) -> str | None:
        with self._lock:
            n = self.stats_data.seen[digest]
            self.stats_data.seen[digest] += 1
            self.stats_data.received += 1
        cfg = self.config
        if not cfg.fault_kinds or (cfg.fault_rate <= 0 and cfg.fault_first_n is None):
            return None
        if cfg.fault_only_seed is not None and request.get("seed") != cfg.fault_only_seed:
            return None
        if cfg.fault_only_task is not None:
            system = next((m.get("content") or "" for m in request.get("messages", []) if m.get("role") == "system"), "")
            if task_of(system) != cfg.fault_only_task:
                return None
        h = hashlib.sha256(f"{digest}#{n}".encode()).digest()
        if cfg.fault_first_n is not None:
            if n >= cfg.fault_first_n:
                return None
        elif int.from_bytes(h[:4], "big") / 2**32 >= cfg.fault_rate:
            return None
        return cfg.fault_kinds[int.from_bytes(h[4:8], "big") % len(cfg.fault_kinds)]

    async def _until_latency(self) -> None:
        """Wait until `latency_ms` after the request arrived: the work of answering happens inside it, as on a
        real endpoint, so a request's latency is the configured one, not that plus this server's own CPU."""
        if self.config.latency_ms:
            deadline = _arrived.get() + self.config.latency_ms / 1000
            await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))

    async def _chat(self, body: bytes, reader: asyncio.StreamReader):
        try:
            request = orjson.loads(body)
            messages = request["messages"]
        except (ValueError, KeyError, TypeError):
            return 400, {"error": {"message": "body must be JSON with messages"}}, {}
        digest = hashlib.sha256(body).hexdigest()  # the openai client serialises one request the same way each time
        fault = self._decide_fault(request, digest)
        if fault is not None and fault in TRANSPORT_FAULTS:
            await self._until_latency()
        if fault == "timeout":
            self._count("timeout")
            try:
                await asyncio.wait_for(reader.read(1), self.config.hang_s)  # b"" once the client hangs up
            except asyncio.TimeoutError:
                pass
            return 0, None, {}
        if fault in ("429", "500"):
            self._count(fault)
            message = "rate limited" if fault == "429" else "internal error"
            return int(fault), {"error": {"message": message, "type": "test_fault"}}, {"retry-after-ms": str(self.config.retry_after_ms)}

        system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
        user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        n = 1 if self.config.ignore_n else int(request.get("n") or 1)
        want_logprobs = bool(request.get("logprobs")) and self.config.logprobs
        top_n = int(request.get("top_logprobs") or 1)
        choices = []
        for i in range(n):
            text, probs = answer_for(system, user, i)
            if fault in CONTENT_FAULTS:
                text, probs = faulty_content(fault, text), None
            choice = {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
            if want_logprobs:
                choice["logprobs"] = {"content": answer_logprobs(text, probs, top_n)}
            choices.append(choice)
        prompt_tokens = sum(estimate_tokens(m.get("content") or "") for m in messages)
        completion_tokens = sum(estimate_tokens(c["message"]["content"]) for c in choices)
        data = orjson.dumps({  # serialised inside the latency too: with logprobs, the heaviest step here
            "id": f"chatcmpl-{digest[:12]}",
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model", "test-model"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        })
        await self._until_latency()
        if reader.at_eof():  # the client gave up (timed out) while we waited: nothing is delivered or paid
            self._count("abandoned")
            return 0, None, {}
        self._count(fault or "ok", paid=digest)
        return 200, (Trickle(data) if fault == "trickle" else data), {}

    def _count(self, outcome: str, paid: str | None = None) -> None:
        with self._lock:
            self.stats_data.by_outcome[outcome] += 1
            if paid is not None:
                self.stats_data.paid[paid] += 1


# ---------------------------------------------------------------- helpers for tests and benches
# (imports inside: the server itself must start without numpy or labeler)

FILLER = tuple(
    "apple river stone cloud paper window garden silver forest candle mirror rocket planet violin "
    "basket pillow ladder bucket carpet dragon island jungle kettle lemon marble needle orange pepper "
    "rabbit saddle tomato tunnel velvet walnut yellow zipper anchor bridge castle desert engine "
    "feather glove hammer igloo jacket kitten lantern meadow napkin oyster parrot quartz ribbon".split()
)


def synthetic_feature(
    feature_index: int = 0,
    *,
    word: str = "class",
    sae_id: int = 1,
    n_top: int = 20,
    n_quantiles: int = 4,
    per_quantile: int = 4,
    n_negatives: int = 20,
    window: int = 32,
    seed: int | None = None,
    wordpiece: bool = False,
):
    """A FeatureExamples whose feature fires on `word` (and only there), with random filler around it.

    Token strings follow byte-level BPE (" word") unless `wordpiece` (BERT style, no spaces).
    """
    import random

    import numpy as np

    from labeler.types import FeatureExamples, FeatureStats, Window

    rng = random.Random(feature_index if seed is None else seed)
    max_activation = 8.0
    scale = max_activation / 255
    seq = [feature_index * 10_000]
    vocab = {w: i + 100 for i, w in enumerate(FILLER + (word,))}

    def make(kind: str, quantile: int, rank: int, level: int | None) -> Window:
        words = [rng.choice(FILLER) for _ in range(window)]
        acts = np.zeros(window, dtype=np.uint8)
        if level is not None:
            for pos in rng.sample(range(window), k=rng.randint(1, 3)):
                words[pos] = word
                acts[pos] = level
        seq[0] += 1
        strs = tuple(w if wordpiece else " " + w for w in words)
        max_pos = int(acts.argmax())
        return Window(
            kind=kind,
            quantile=quantile,
            rank=rank,
            seq_index=seq[0],
            window_start=0,
            token_ids=np.array([vocab[w] for w in words], dtype=np.int32),
            activations_q=acts,
            scale=scale,
            max_position=max_pos,
            max_activation=float(acts[max_pos]) * scale,
            token_strs=strs,
        )

    windows = [make("top", 0, r, 255 - 3 * r) for r in range(n_top)]
    for q in range(n_quantiles):
        windows += [make("quantile", q, r, 40 + 50 * q) for r in range(per_quantile)]
    windows += [make("negative", 0, r, None) for r in range(n_negatives)]
    stats = FeatureStats(
        feature_index=feature_index,
        n_tokens=100_000,
        n_firing=500,
        max_activation=max_activation,
        sum_activation=1000.0,
        histogram_edges=(0.0, 4.0, 8.0),
        histogram_counts=(400, 100),
    )
    return FeatureExamples(sae_id=sae_id, feature_index=feature_index, stats=stats, examples=tuple(windows))


def context_for(server: "LLMTestServer", *, concurrency: int = 8, timeout_s: float = 2.0, max_retries: int = 4, **kwargs):
    """An LLMContext pointed at the test server, with short timeouts so fault tests stay fast."""
    from labeler.llm import ClientOptions, Endpoint, LLMContext, Prices

    return LLMContext.create(
        explain=Endpoint(server.base_url, "test-key", "test-model"),
        options=ClientOptions(
            concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries, prices=Prices(1.0, 2.0)
        ),
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default=",".join(DEFAULT_FAULTS))
    parser.add_argument("--no-logprobs", action="store_true")
    args = parser.parse_args(argv)
    server = LLMTestServer(
        port=args.port,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        logprobs=not args.no_logprobs,
    )

    async def run() -> None:
        await server.open()
        print(server.port, flush=True)
        await server._server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
