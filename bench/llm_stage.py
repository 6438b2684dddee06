"""Throughput of the LLM stage against a 200 ms OpenAI-compatible server, beside the bare openai client.

The loopback test server (tests/llm_server.py) runs in another process. Two measurements, same server,
same run, same concurrency:

1. bare: `AsyncOpenAI.chat.completions.create` alone (on the aiohttp transport the pipeline uses), C
   requests in flight, ~400-token prompts, as many calls as the pipeline makes. bare_client_ratio = calls/s / (C / latency).
2. pipeline: `label_features` on synthetic features (random token strings, no model needed) with the
   default LLM configuration (LLM explainer + detection + fuzzing), its ledger on a temporary SQLite
   database (prefetch SELECTs, and the upserts of results and paid calls on the writer thread as features
   finish, as the pipeline's label_batch does: the batch ends when everything is written).
   llm_stage_ratio = features/s / (C / latency / LLM calls per feature).

It prints bare_client_ratio=, llm_stage_ratio=, pipeline_vs_bare= (the pipeline's LLM calls/s over the
bare client's) and tokens_per_feature= (prompt + completion tokens per feature, as the server counts them:
~4 characters a token). Bare and pipeline runs alternate --repeat times and each keeps its best, which
tames the noise of a shared machine (the pipeline's min / median / max over the runs is printed too); the CPU each spends per call (client process and server process,
whatever the load) is printed beside, as the load-independent view of what the pipeline adds. With --with-embedding, and when the
embedding scorer is registered, the same run is repeated with it and llm_stage_ratio_with_embedding=
is printed too (its MiniLM forward passes are CPU work, outside the ideal).

    .venv/bin/python bench/llm_stage.py [--features 640] [--concurrency 64] [--latency-ms 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from llm_server import synthetic_feature  # noqa: E402

from labeler.config import LabelConfig  # noqa: E402
from labeler.label import BatchWriter, label_features  # noqa: E402
from labeler.llm import Budget, ClientOptions, Endpoint, Ledger, LLMContext, Prices  # noqa: E402
from labeler.llm.client import open_http  # noqa: E402
from labeler.store.db import session_scope, upgrade  # noqa: E402
from labeler.store.features import upsert_features  # noqa: E402
from labeler.store.llm_calls import load_llm_calls  # noqa: E402
from labeler.store.sources import upsert_sae  # noqa: E402

WORDS = ("class", "def", "import", "return", "yield", "lambda", "while", "assert", "async", "await")
LLM_SCORERS = ("detection", "fuzzing")
BARE_PROMPT_CHARS = 1600  # ~400 tokens, as in DESIGN.md's measurement


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc; NaN where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CPUMeter:
    """CPU seconds this process and the server spend during a block: a load-independent view of the cost."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.client_s = self.server_s = 0.0

    def __enter__(self) -> "CPUMeter":
        self._client0, self._server0 = time.process_time(), process_cpu_s(self.server_pid)
        return self

    def __exit__(self, *exc) -> None:
        self.client_s = time.process_time() - self._client0
        self.server_s = process_cpu_s(self.server_pid) - self._server0


def start_server(latency_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "llm_server.py"), "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


async def bare_client(base_url: str, *, n_calls: int, concurrency: int) -> float:
    """Calls per second of the openai client alone (its pool sized like the pipeline's)."""
    client = open_http(Endpoint(base_url, "bench", "bench-model"), ClientOptions(concurrency=concurrency, max_retries=0))
    semaphore = asyncio.Semaphore(concurrency)
    filler = ("lorem ipsum dolor sit amet " * (BARE_PROMPT_CHARS // 27 + 1))[:BARE_PROMPT_CHARS]

    async def call(i: int) -> None:
        async with semaphore:
            await client.chat.completions.create(
                model="bench-model",
                messages=[{"role": "user", "content": f"Excerpts where the feature is active:\n1. <<w{i}>> {filler}"}],
                max_tokens=60,
                temperature=0.0,
            )

    await asyncio.gather(*(call(-1 - i) for i in range(concurrency)))  # warm the pool
    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(n_calls)))
    elapsed = time.perf_counter() - started
    await client.close()
    return n_calls / elapsed


def seed_database(url: str, features) -> int:
    upgrade(url)
    with session_scope(url) as session:
        sae_id = upsert_sae(
            session, name="bench", source="local", model_name="m", hook_name="h", d_in=4, d_sae=len(features),
            architecture="standard", checksum="bench",
        )
        upsert_features(session, sae_id=sae_id, stats=[f.stats for f in features])
    return sae_id


async def pipeline(base_url: str, url: str, features, *, sae_id: int, config: LabelConfig, concurrency: int):
    def load(hashes):
        with session_scope(url) as session:
            return load_llm_calls(session, request_hashes=hashes)

    llm = LLMContext.create(
        explain=Endpoint(base_url, "bench", "bench-model"),
        options=ClientOptions(concurrency=concurrency, timeout_s=30, max_retries=2, prices=Prices(0.15, 0.6)),
        ledger=Ledger(loader=load),
        budget=Budget(),
    )
    persist_s = 0.0
    write = BatchWriter(sae_id=sae_id, job_id=None, budget=llm.budget, database_url=url)

    class TimedWriter:  # as labeler.pipeline.label_batch writes: chunks and paid calls, during the run
        def write_features(self, results) -> None:
            self._timed(write.write_features, results)

        def write_calls(self, entries) -> None:
            self._timed(write.write_calls, entries)

        def _timed(self, method, items) -> None:
            nonlocal persist_s
            start = time.perf_counter()
            method(items)
            persist_s += time.perf_counter() - start

    started = time.perf_counter()
    results = await label_features(features, config=config, llm=llm, sink=TimedWriter())
    elapsed = time.perf_counter() - started
    return results, elapsed, persist_s, llm.ledger.n_loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=5, help="alternate bare and pipeline runs; keep each one's best")
    parser.add_argument("--with-embedding", action="store_true")
    args = parser.parse_args()

    latency_s = args.latency_ms / 1000
    ideal_calls_per_s = args.concurrency / latency_s
    features = [synthetic_feature(i, word=WORDS[i % len(WORDS)]) for i in range(args.features)]
    config = LabelConfig(explainer="llm", scorers=LLM_SCORERS)
    calls_per_feature = 1 + len(LLM_SCORERS)
    ideal_features_per_s = ideal_calls_per_s / calls_per_feature

    server, base_url = start_server(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bare_rates, pipeline_rates = [], []  # calls/s and features/s, per run
            cpu = {"bare": [], "pipeline": []}  # (client, server) CPU ms per call, per run
            for run in range(args.repeat):
                url = f"sqlite:///{tmp}/bench{run}.db"  # a fresh ledger: every call is paid again
                sae_id = seed_database(url, features)
                with CPUMeter(server.pid) as meter:
                    results, elapsed, persist_s, n_loads = asyncio.run(
                        pipeline(base_url, url, features, sae_id=sae_id, config=config, concurrency=args.concurrency)
                    )
                n_calls = sum(len(r.llm_calls) for r in results)
                cpu["pipeline"].append((meter.client_s / n_calls * 1000, meter.server_s / n_calls * 1000))
                with CPUMeter(server.pid) as meter:
                    bare = asyncio.run(bare_client(base_url, n_calls=n_calls, concurrency=args.concurrency))
                cpu["bare"].append((meter.client_s / (n_calls + args.concurrency) * 1000, meter.server_s / (n_calls + args.concurrency) * 1000))
                statuses = {s: sum(r.status == s for r in results) for s in ("labelled", "failed", "pending")}
                print(
                    f"run {run}: bare client {n_calls} calls at {bare:.1f} calls/s; pipeline {len(features)} features "
                    f"{statuses} in {elapsed:.2f} s ({persist_s:.2f} s of writing to SQL on the writer thread, beside the calls), {n_calls / len(features):.3f} "
                    f"calls/feature, {n_loads} ledger SELECTs, {len(features) / elapsed * 60:.0f} features/min"
                )
                bare_rates.append(bare)
                pipeline_rates.append(len(features) / elapsed)
            for name, rows in cpu.items():
                client_ms, server_ms = (min(r[i] for r in rows) for i in (0, 1))
                print(f"{name}: CPU per LLM call {client_ms:.2f} ms in the client, {server_ms:.2f} ms in the server")
            tokens = sum(r.prompt_tokens + r.completion_tokens for r in results) / len(features)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(
                f"server latency {args.latency_ms:.0f} ms, concurrency {args.concurrency}, {os.cpu_count()} CPUs, "
                f"load average {load:.1f}; ideal {ideal_calls_per_s:.0f} calls/s = {ideal_features_per_s * 60:.0f} features/min"
            )
            stage = sorted(r / ideal_features_per_s for r in pipeline_rates)
            print(f"llm_stage_ratio over {len(stage)} runs: min {stage[0]:.3f}, median {statistics.median(stage):.3f}, max {stage[-1]:.3f}")
            best_bare, best_pipeline = max(bare_rates), max(pipeline_rates)
            print(f"bare_client_ratio={best_bare / ideal_calls_per_s:.3f}")
            print(f"llm_stage_ratio={best_pipeline / ideal_features_per_s:.3f}")
            print(f"pipeline_vs_bare={best_pipeline * calls_per_feature / best_bare:.3f}")
            print(f"tokens_per_feature={tokens:.0f}")

            if args.with_embedding:
                from labeler.score import known_scorers

                if "embedding" not in known_scorers():
                    print("embedding scorer not registered: skipped")
                else:
                    url = f"sqlite:///{tmp}/bench_embedding.db"
                    sae_id = seed_database(url, features)
                    config = config.model_copy(update={"scorers": (*LLM_SCORERS, "embedding")})
                    _, elapsed, _, _ = asyncio.run(
                        pipeline(base_url, url, features, sae_id=sae_id, config=config, concurrency=args.concurrency)
                    )
                    print(f"llm_stage_ratio_with_embedding={len(features) / elapsed / ideal_features_per_s:.3f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
