"""The LLM side of labelling: one client over `openai.AsyncOpenAI`, its ledger/cache, budget and prompt helpers.

    LLMContext        what a job's LLM stages share (explain + score clients, ledger, budget, slots)
    LLMClient         one endpoint + model; `complete(ChatRequest) -> ChatAnswer`
    Ledger            request hash -> paid answer, prefetched from `llm_calls` in bulk
    Budget, Prices    per-job token / cost limits checked before each paid call
"""

from labeler.llm.budget import Account, Budget, Prices, current_account
from labeler.llm.client import ClientOptions, Endpoint, LLMClient
from labeler.llm.context import LLMContext
from labeler.llm.ledger import Ledger
from labeler.llm.request import ChatAnswer, ChatRequest, Choice, LedgerEntry, TokenLogprob

__all__ = [
    "Account",
    "Budget",
    "ChatAnswer",
    "ChatRequest",
    "Choice",
    "ClientOptions",
    "Endpoint",
    "LLMClient",
    "LLMContext",
    "Ledger",
    "LedgerEntry",
    "Prices",
    "TokenLogprob",
    "current_account",
]
