"""Reading answers: a label from free text, 0/1 and 0-10 lists from JSON, probabilities from logprobs.

Every function returns a usable value or raises `ExplanationParseError` saying what was wrong
(empty, refusal, too long, garbage, truncated JSON, wrong length); none returns a placeholder.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Sequence

from labeler.errors import ExplanationParseError
from labeler.llm.request import TokenLogprob

MAX_LABEL_WORDS = 15
MAX_LEVEL = 10

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_PREFIX = re.compile(r"^\s*(?:\*\*)?\s*(label|explanation|description|answer|feature)\s*(?:\*\*)?\s*[:\-–]\s*", re.IGNORECASE)
_REFUSAL = re.compile(
    r"^(i'?m sorry|i am sorry|sorry[,.!]|i can'?t|i cannot|i'?m unable|i am unable|i'?m not able|as an ai|unfortunately,? i)",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’"
_JSON_LABEL_KEYS = ("label", "explanation", "description", "answer", "feature")


def strip_code_fence(text: str) -> str:
    text = text.strip()
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _label_from_json(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _label_from_json(value[0])
    if isinstance(value, dict):
        for key in _JSON_LABEL_KEYS:
            if isinstance(value.get(key), str):
                return value[key]
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(strings) == 1:
            return strings[0]
    return None


def _pick_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    prefixed = [ln for ln in lines if _PREFIX.match(ln)]
    if prefixed:
        return prefixed[-1]
    if len(lines) > 1 and lines[0].endswith(":"):
        return lines[-1]  # "Here is a label:" then the label
    return lines[0]


def parse_label(answer: str) -> str:
    """A short label from a model's answer, or ExplanationParseError naming what was wrong with it."""
    text = strip_code_fence(answer or "")
    if not text:
        raise ExplanationParseError("the answer is empty")
    if text[0] in "{[":
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ExplanationParseError(f"the answer is truncated or invalid JSON: {text[:80]!r}") from None
        label = _label_from_json(parsed)
        if label is None:
            raise ExplanationParseError(f"the JSON answer holds no label: {text[:80]!r}")
        text = label
    elif len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)  # a JSON string: its escapes are not part of the label
        except ValueError:
            decoded = None
        if isinstance(decoded, str):
            text = decoded
    text = _pick_line(text)
    text = _PREFIX.sub("", text).strip().strip("*").strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES and not any(q in text[1:-1] for q in _QUOTES[:3]):
        text = text[1:-1].strip()  # one quoted label; '"class" vs "def"' keeps its quotes
    text = re.sub(r"\s+", " ", text).rstrip(".").strip()
    if not text:
        raise ExplanationParseError("the answer is empty once quotes and prefixes are removed")
    if _REFUSAL.match(text):
        raise ExplanationParseError(f"the answer is a refusal: {text[:80]!r}")
    letters = sum(c.isalpha() for c in text)
    if letters == 0 or letters < 0.5 * sum(not c.isspace() for c in text):
        raise ExplanationParseError(f"the answer is garbage, not a label: {text[:80]!r}")
    n_words = len(text.split())
    if n_words > MAX_LABEL_WORDS:
        raise ExplanationParseError(f"the answer is too long for a label ({n_words} words > {MAX_LABEL_WORDS})")
    return text


def normalise_label(label: str) -> str:
    """Key for deduplicating candidates: case, quotes and punctuation do not make a new label."""
    return re.sub(r"[^\w]+", " ", label.lower()).strip()


def _json_list(answer: str) -> list:
    text = strip_code_fence(answer or "")
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise ExplanationParseError(f"the answer holds no JSON list: {text[:80]!r}")
    try:
        value = json.loads(text[start : end + 1])
    except ValueError:
        raise ExplanationParseError(f"the answer is truncated or invalid JSON: {text[:80]!r}") from None
    if not isinstance(value, list):
        raise ExplanationParseError(f"the answer is not a JSON list: {text[:80]!r}")
    return value


_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}


def parse_binary_list(answer: str, n: int) -> list[int]:
    """A JSON list of n 0/1 verdicts (true/false and "yes"/"no" accepted)."""
    values = _json_list(answer)
    if len(values) != n:
        raise ExplanationParseError(f"expected {n} verdicts, the answer has {len(values)}")
    out = []
    for v in values:
        key = str(v).strip().lower() if not isinstance(v, bool) else str(int(v))
        if key in _YES:
            out.append(1)
        elif key in _NO:
            out.append(0)
        else:
            raise ExplanationParseError(f"verdict {v!r} is neither 0 nor 1")
    return out


def parse_level_lists(answer: str, lengths: Sequence[int]) -> list[list[int]]:
    """A JSON list of per-context lists of integers 0-10, each as long as its context."""
    values = _json_list(answer)
    if len(values) != len(lengths):
        raise ExplanationParseError(f"expected {len(lengths)} lists of predictions, the answer has {len(values)}")
    out = []
    for i, (row, length) in enumerate(zip(values, lengths), start=1):
        if not isinstance(row, list) or len(row) != length:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise ExplanationParseError(f"context {i}: expected {length} predictions, got {got}")
        try:
            out.append([min(MAX_LEVEL, max(0, int(round(float(v))))) for v in row])
        except (TypeError, ValueError):
            raise ExplanationParseError(f"context {i}: predictions must be numbers 0-{MAX_LEVEL}") from None
    return out


def _alternatives(token: TokenLogprob) -> dict[str, float]:
    alts = {t.strip(): lp for t, lp in token.top}
    alts.setdefault(token.token.strip(), token.logprob)
    return alts


def binary_probabilities(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """P(1) at each 0/1 token of the answer, normalised over {0, 1}; None unless exactly n are found."""
    if logprobs is None:
        return None
    probs = []
    for token in logprobs:
        if token.token.strip() not in ("0", "1"):
            continue
        alts = _alternatives(token)
        p1 = math.exp(alts["1"]) if "1" in alts else 0.0
        p0 = math.exp(alts["0"]) if "0" in alts else 0.0
        probs.append(p1 / (p0 + p1) if p0 + p1 > 0 else 0.5)
    return probs if len(probs) == n else None


def expected_levels(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """Expected 0-10 value at each number token of the answer; None unless exactly n are found."""
    if logprobs is None:
        return None
    levels = []
    for token in logprobs:
        text = token.token.strip()
        if not text.isdigit() or int(text) > MAX_LEVEL:
            continue
        weights = {int(t): math.exp(lp) for t, lp in _alternatives(token).items() if t.isdigit() and int(t) <= MAX_LEVEL}
        total = sum(weights.values())
        levels.append(sum(k * w for k, w in weights.items()) / total if total > 0 else float(text))
    return levels if len(levels) == n else None
