"""The ledger's form of an answer: what is kept of a completion, and how it replays."""

from __future__ import annotations

import orjson

from labeler.llm.request import Choice, LedgerEntry, TokenLogprob, choices_from_json, normalise_response

COMPLETION = {
    "model": "m-2025",
    "choices": [
        {
            "message": {"role": "assistant", "content": "[1, 0]"},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {"token": "[", "logprob": -0.000001, "top_logprobs": [{"token": "[", "logprob": -0.000001}]},
                    {
                        "token": "1",
                        "logprob": -0.1053605,
                        "bytes": [49],
                        "top_logprobs": [{"token": "1", "logprob": -0.1053605}, {"token": "0", "logprob": -2.3025851}],
                    },
                    {"token": ",", "logprob": 0.0, "top_logprobs": []},
                    {"token": " 0", "logprob": -0.5108256, "top_logprobs": None},
                ]
            },
        },
        {"message": {"content": None}, "finish_reason": "length"},
    ],
}

REPLAYED = (
    Choice(
        "[1, 0]",
        "stop",
        (
            TokenLogprob("[", -0.0, (("[", -0.0),)),
            TokenLogprob("1", -0.10536, (("1", -0.10536), ("0", -2.30259))),
            TokenLogprob(",", 0.0, ()),
            TokenLogprob(" 0", -0.51083, ()),
        ),
    ),
    Choice("", "length", None),
)


def test_logprobs_are_kept_column_wise_and_replay_token_by_token():
    stored = normalise_response(COMPLETION)
    lp = stored["choices"][0]["logprobs"]
    assert lp == {
        "tokens": ["[", "1", ",", " 0"],
        "logprobs": [-0.0, -0.10536, 0.0, -0.51083],
        "top_counts": [1, 2, 0, 0],
        "top_tokens": ["[", "1", "0"],
        "top_logprobs": [-0.0, -0.10536, -2.30259],
    }
    # what the ledger reads back from its JSON column answers exactly as the fresh answer did
    assert choices_from_json(orjson.loads(orjson.dumps(stored))) == REPLAYED
    entry = LedgerEntry("h", "m", 10, 4, 0.2, 0.0, 1, response=stored)
    assert entry.answer(cached=True).choices == REPLAYED
    assert entry.answer(cached=True).model == "m-2025"


def test_ledger_rows_in_the_earlier_per_token_form_still_replay():
    earlier = {
        "model": "m",
        "choices": [
            {
                "text": "[1, 0]",
                "finish_reason": "stop",
                "logprobs": [["[", -0.0, [["[", -0.0]]], ["1", -0.10536, [["1", -0.10536], ["0", -2.30259]]], [",", 0.0, []], [" 0", -0.51083, []]],
            },
            {"text": "", "finish_reason": "length", "logprobs": None},
        ],
    }
    assert choices_from_json(earlier) == REPLAYED

