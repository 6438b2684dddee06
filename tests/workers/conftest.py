"""Real services for worker tests: a private redis-server (so it can be killed and restarted), a
throwaway PostgreSQL database, and `labeler worker` subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from labeler.settings import reset_settings
from labeler.store.db import upgrade


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server we own, with an append-only file so a restart keeps queued messages."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def service_env(monkeypatch, pg_database, redis_server, tmp_path) -> dict[str, str]:
    """Settings shared by this test and its worker processes, as a multi-machine deployment would."""
    upgrade(pg_database)
    env = {
        "LABELER_DATABASE_URL": pg_database,
        "LABELER_BROKER_URL": redis_server.url,
        "LABELER_DATA_DIR": str(tmp_path / "data"),
        "LABELER_VISIBILITY_TIMEOUT_S": "12",
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    return env


class Workers:
    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.processes: list[subprocess.Popen] = []

    def start(self, queues: str = "gpu,llm") -> subprocess.Popen:
        log = open(self.logdir / f"worker-{len(self.processes)}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "labeler", "worker", "--queues", queues, "--loglevel", "INFO"],
            env={**os.environ, **self.env, "OMP_NUM_THREADS": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text()[-4000:] for p in sorted(self.logdir.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(service_env, tmp_path) -> Iterator[Workers]:
    pool = Workers(service_env, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def llm_server_url() -> Iterator[str]:
    """The project's OpenAI-compatible test server in its own process, on loopback."""
    script = Path(__file__).resolve().parents[1] / "llm_server.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--latency-ms", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    port = int("".join(ch for ch in line.split()[-1] if ch.isdigit()))
    yield f"http://127.0.0.1:{port}/v1"
    process.terminate()
    process.wait(timeout=10)
