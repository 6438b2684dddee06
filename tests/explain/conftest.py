"""The loopback OpenAI-compatible server (tests/llm_server.py) as a fixture: call it to start one."""

from __future__ import annotations

import pytest
from llm_server import LLMTestServer


@pytest.fixture
def llm_server():
    started: list[LLMTestServer] = []

    def start(**config) -> LLMTestServer:
        server = LLMTestServer(**config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
