"""The loopback server itself: runnable as a process, OpenAI-shaped, deterministic in its faults."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import openai
from llm_server import LLMTestServer, answer_for, label_terms

SERVER = Path(__file__).resolve().parents[1] / "llm_server.py"


def test_as_a_process_it_prints_its_port_and_serves_models_and_stats():
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--latency-ms", "1"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["test-model"]
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Excerpts:\n1. the <<owl>> flew"}], max_tokens=20
        )
        assert reply.choices[0].message.content == 'the word "owl"' and reply.usage.prompt_tokens > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats") as r:
            stats = json.load(r)
        assert stats["received"] == 1 and stats["paid_total"] == 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_faults_are_a_function_of_the_request_and_its_reception_count():
    def outcomes() -> list[str]:
        with LLMTestServer(fault_rate=0.5, fault_kinds=("429", "500", "garbage")) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            seen = []
            for i in range(12):
                try:
                    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i % 4}"}])
                    seen.append(reply.choices[0].message.content)
                except openai.APIStatusError as exc:
                    seen.append(str(exc.status_code))
            return seen

    first = outcomes()
    assert first == outcomes()
    assert {"429", "500"} & set(first) and any(not o.isdigit() for o in first)


def test_the_judges_follow_the_label_terms():
    assert label_terms('the word "class" in Python') == {"class"}
    assert label_terms("plural nouns") == {"plural", "nouns"}
    user = 'Label: the word "cat"\n\nContexts:\n1. a cat sat\n2. a dog ran\n\nReply with a JSON list of 2 numbers.'
    assert answer_for("You judge labels ... whether the feature is active", user, 0)[0] == "[1, 0]"
    marked = 'Label: the word "cat"\n\nContexts:\n1. a <<cat>> sat\n2. a cat <<sat>>\n'
    assert answer_for("You judge labels ... marked tokens ...", marked, 0)[0] == "[1, 0]"
    tokens = 'Label: the word "cat"\n\nContexts:\n1. ["a", "cat", "sat"]\n'
    assert answer_for("You simulate a feature", tokens, 0)[0] == "[[0,10,0]]"
