"""The client against the loopback server: cache, in-flight sharing, retries, errors, budget, logprobs probe."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from llm_server import context_for

from labeler.errors import BudgetExceededError, ConfigError, LLMError
from labeler.llm import Account, Budget, ClientOptions, Endpoint, Ledger, LLMContext, current_account
from labeler.llm.request import ChatRequest

HELLO = (("system", "You explain features."), ("user", "Excerpts where the feature is active:\n1. a <<cat>> sat"))


def run(coro):
    return asyncio.run(coro)


def test_request_hash_covers_what_changes_the_answer_and_nothing_else():
    base = ChatRequest(model="m", messages=HELLO, temperature=0.0, max_tokens=10)
    assert base.hash == ChatRequest(model="m", messages=HELLO, temperature=0.0, max_tokens=10).hash
    variants = [
        ChatRequest(model="other", messages=HELLO, max_tokens=10),
        ChatRequest(model="m", messages=HELLO[:1], max_tokens=10),
        ChatRequest(model="m", messages=HELLO, max_tokens=10, seed=1),
        ChatRequest(model="m", messages=HELLO, max_tokens=10, n=2),
        ChatRequest(model="m", messages=HELLO, max_tokens=10, logprobs=True, top_logprobs=5),
        ChatRequest(model="m", messages=HELLO, max_tokens=10, temperature=0.7),
    ]
    assert len({v.hash for v in variants} | {base.hash}) == len(variants) + 1


def test_a_repeated_request_is_answered_from_the_ledger_without_http(llm_server):
    server = llm_server()
    llm = context_for(server)

    async def go():
        async with llm:
            request = llm.explain.request(HELLO, max_tokens=20)
            account = Account()
            current_account.set(account)
            first = await llm.explain.complete(request)
            second = await llm.explain.complete(request)
            return first, second, account

    first, second, account = run(go())
    assert first.text == second.text == 'the word "cat"'
    assert (first.cached, second.cached) == (False, True)
    assert server.stats()["received"] == 1
    assert [e.request_hash for e in account.calls] == [first.request_hash]  # paid once, charged once
    assert first.prompt_tokens > 0 and account.cost_usd == pytest.approx(first.cost_usd)


def test_identical_requests_in_flight_share_one_http_call(llm_server):
    server = llm_server(latency_ms=50)
    llm = context_for(server)

    async def go():
        async with llm:
            request = llm.explain.request(HELLO, max_tokens=20)
            return await asyncio.gather(*(llm.explain.complete(request) for _ in range(5)))

    answers = run(go())
    assert {a.text for a in answers} == {'the word "cat"'}
    assert sum(not a.cached for a in answers) == 1
    assert server.stats()["received"] == 1


@pytest.mark.parametrize("kind", ["429", "500", "timeout"])
def test_transient_failures_are_retried_on_the_same_request(llm_server, kind):
    server = llm_server(fault_first_n=1, fault_kinds=(kind,))
    llm = context_for(server, timeout_s=0.3)

    async def go():
        async with llm:
            return await llm.explain.complete(llm.explain.request(HELLO, max_tokens=20))

    answer = run(go())
    assert answer.text == 'the word "cat"'
    assert answer.attempts == 2
    stats = server.stats()
    assert stats["received"] == 2 and stats["paid_total"] == 1


def test_an_answer_trickled_byte_by_byte_is_cut_off_at_the_call_deadline(llm_server, monkeypatch):
    # every read arrives well within the 1 s timeout, so only a deadline over the whole call can end it
    monkeypatch.setattr("labeler.llm.client.MAX_RETRY_WAIT_S", 0.5)
    server = llm_server(fault_rate=1.0, fault_kinds=("trickle",))
    llm = context_for(server, timeout_s=1.0, max_retries=0)
    assert llm.options.deadline_s == 1.5

    async def go():
        async with llm:
            request = llm.explain.request(HELLO, max_tokens=20)
            try:
                await llm.explain.complete(request)
            finally:
                assert llm.explain._slots.free == llm.options.concurrency  # the slot came back

    with pytest.raises(LLMError, match="did not finish answering within 1.5 s, all attempts included"):
        run(go())
    assert len(llm.ledger) == 0


def test_an_answer_past_the_size_cap_is_refused_while_it_is_read(llm_server, monkeypatch):
    monkeypatch.setattr("labeler.llm.client.MAX_RESPONSE_BYTES", 1000)
    server = llm_server()
    llm = context_for(server, max_retries=1)

    async def go(logprobs: bool):
        async with llm:
            return await llm.explain.complete(llm.explain.request(HELLO, max_tokens=20, logprobs=logprobs, top_logprobs=5 if logprobs else None))

    assert run(go(logprobs=False)).text == 'the word "cat"'  # a few hundred bytes
    with pytest.raises(LLMError, match=r"the answer is larger than 1000 bytes; is it ignoring max_tokens \(20\)\?"):
        run(go(logprobs=True))  # logprobs for every token: over the cap
    assert len(llm.ledger) == 1
    assert server.stats()["received"] == 2  # refused at once, not read again and again


def test_failures_past_the_retries_raise_llm_error_and_record_nothing(llm_server):
    server = llm_server(fault_rate=1.0, fault_kinds=("500",))
    llm = context_for(server, max_retries=2)

    async def go():
        async with llm:
            await llm.explain.complete(llm.explain.request(HELLO, max_tokens=20))

    with pytest.raises(LLMError, match="failed after 2 retries: 500"):
        run(go())
    assert server.stats()["received"] == 3
    assert len(llm.ledger) == 0


def test_a_wrong_api_key_is_a_config_error_not_a_retry(llm_server):
    server = llm_server(require_key="right")
    llm = context_for(server)

    async def go():
        async with llm:
            await llm.explain.complete(llm.explain.request(HELLO))

    with pytest.raises(ConfigError, match="LABELER_LLM_API_KEY"):
        run(go())


def test_an_unreachable_endpoint_is_an_llm_error_that_names_it():
    llm = LLMContext.create(
        explain=Endpoint("http://127.0.0.1:9/v1", "k", "m"), options=ClientOptions(timeout_s=0.5, max_retries=0)
    )

    async def go():
        async with llm:
            await llm.explain.complete(llm.explain.request(HELLO))

    with pytest.raises(LLMError, match=r"127\.0\.0\.1:9/v1 unreachable"):
        run(go())


def test_budget_refuses_paid_calls_once_spent_but_still_serves_the_ledger(llm_server):
    server = llm_server()
    budget = Budget(max_prompt_tokens=100)
    llm = context_for(server, budget=budget)

    async def go():
        async with llm:
            cheap = llm.explain.request((("user", "Excerpts:\n1. <<a>>"),), max_tokens=5)
            first = await llm.explain.complete(cheap)
            with pytest.raises(BudgetExceededError, match="budget is spent"):
                await llm.explain.complete(llm.explain.request((("user", "x" * 2000),), max_tokens=5))
            with pytest.raises(BudgetExceededError):  # stays exhausted, even for a small call
                await llm.explain.complete(llm.explain.request((("user", "Excerpts:\n1. <<b>>"),), max_tokens=5))
            again = await llm.explain.complete(cheap)
            return first, again

    first, again = run(go())
    assert again.cached and again.text == first.text
    assert server.stats()["received"] == 1
    assert budget.spent_prompt_tokens == first.prompt_tokens <= 100


def test_logprobs_support_is_probed_once_and_cached(llm_server):
    with_lp, without_lp = llm_server(), llm_server(logprobs=False)

    async def probe(server):
        llm = context_for(server)
        async with llm:
            results = await asyncio.gather(*(llm.score.supports_logprobs() for _ in range(3)))
            return results + [await llm.score.supports_logprobs()]

    assert run(probe(with_lp)) == [True] * 4
    assert run(probe(without_lp)) == [False] * 4
    assert with_lp.stats()["received"] == without_lp.stats()["received"] == 1


def test_the_ledger_looks_up_in_one_load_and_asks_once_per_hash():
    asked: list[list[str]] = []

    def loader(hashes):
        asked.append(list(hashes))
        return {}

    ledger = Ledger(loader=loader)

    async def go():
        await ledger.load(["a", "b", "a"], coalesce=False)
        await ledger.load(["b", "c"], coalesce=False)
        await ledger.load(["a", "c"], coalesce=False)

    run(go())
    assert asked == [["a", "b"], ["c"]]
    assert ledger.n_loads == 2


def test_a_200_answer_without_choices_is_an_llm_error_and_not_cached(llm_server):
    server = llm_server()

    async def go():
        llm = context_for(server)
        async with llm:
            original = server._chat

            async def error_body(body, reader):
                return 200, {"error": {"message": "upstream provider overloaded"}}, {}

            server._chat = error_body
            try:
                await llm.explain.complete(llm.explain.request(HELLO))
            finally:
                server._chat = original
        return llm

    with pytest.raises(LLMError, match="answered without choices: .*upstream provider overloaded"):
        run(go())


@pytest.mark.parametrize(
    "body",
    [
        {"choices": [{"message": {"content": "a label"}}], "usage": {"prompt_tokens": "many"}},
        {"choices": ["not an object"]},
        {"choices": [{"message": {"content": "yes"}, "logprobs": {"content": [{"token": "yes", "logprob": "high"}]}}]},
    ],
)
def test_a_completion_with_fields_of_the_wrong_type_is_an_llm_error_and_not_cached(llm_server, body):
    server = llm_server()

    async def go():
        llm = context_for(server)
        async with llm:
            server._chat = lambda _body, _reader: _answer(body)
            with pytest.raises(LLMError, match="sent a malformed completion"):
                await llm.explain.complete(llm.explain.request(HELLO))
        assert len(llm.ledger) == 0

    async def _answer(body):
        return 200, body, {}

    run(go())


def test_the_body_sent_is_the_canonical_json_the_hash_covers(llm_server):
    server = llm_server()
    seen: list[bytes] = []

    async def go():
        llm = context_for(server)
        async with llm:
            original = server._chat

            async def recording(body, reader):
                seen.append(body)
                return await original(body, reader)

            server._chat = recording
            request = llm.explain.request(HELLO, max_tokens=7)
            await llm.explain.complete(request)
        return request

    request = run(go())
    assert seen == [request.body]
    assert json.loads(request.body) == request.payload
    assert hashlib.sha256(seen[0]).hexdigest() == request.hash
