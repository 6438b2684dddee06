"""Everything the LLM stages of one job share: a client per stage, one ledger, one budget, one set of slots.

`async with context:` opens the HTTP connections in the running event loop (`concurrency` connections
per distinct endpoint) and closes them on exit; it may be nested. The explain and score
stages may point at different endpoints and models, but they share the concurrency limit, so one worker
process never has more than `concurrency` requests in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labeler.llm.budget import Budget
from labeler.llm.client import ClientOptions, Endpoint, LLMClient, open_http
from labeler.llm.ledger import Ledger
from labeler.llm.slots import Slots


@dataclass
class LLMContext:
    explain: LLMClient
    score: LLMClient
    ledger: Ledger
    budget: Budget
    options: ClientOptions
    _depth: int = field(default=0, repr=False)
    _http: list = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls,
        *,
        explain: Endpoint,
        score: Endpoint | None = None,
        options: ClientOptions | None = None,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
    ) -> "LLMContext":
        options = options if options is not None else ClientOptions()
        ledger = ledger if ledger is not None else Ledger()  # an empty Ledger is falsy (it has __len__)
        budget = budget if budget is not None else Budget()
        return cls(
            explain=LLMClient(explain, options=options, ledger=ledger, budget=budget),
            score=LLMClient(score or explain, options=options, ledger=ledger, budget=budget),
            ledger=ledger,
            budget=budget,
            options=options,
        )

    @property
    def clients(self) -> tuple[LLMClient, LLMClient]:
        return self.explain, self.score

    async def __aenter__(self) -> "LLMContext":
        if self._depth == 0:
            slots = Slots(self.options.concurrency)
            inflight: dict = {}
            http: dict[tuple[str, str], object] = {}
            for client in self.clients:
                key = (client.endpoint.base_url, client.endpoint.api_key)
                if key not in http:
                    http[key] = open_http(client.endpoint, self.options)
                client.connect(http[key], slots, inflight)
            self._http = list(http.values())
        self._depth += 1
        return self

    async def __aexit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for client in self.clients:
                client.disconnect()
            http, self._http = self._http, []
            for connection in http:
                await connection.close()
