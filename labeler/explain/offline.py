"""Offline explainer: labels from the tokens and n-grams a feature fires on, no LLM needed.

Counts 1- to 3-grams that end on a token where the feature is active (the window's max token counts
twice) against the background: inactive tokens of the shown windows plus every token of any shown
negative window. Terms are ranked by their share of the KL divergence between the two distributions,
p_active * log(p_active / p_background), with add-one smoothing so an n-gram seen once does not outrank
one seen twenty times. Special tokens never count; pure punctuation and whitespace only when nothing
else fires. A few phrasings are built from the top terms and re-ranked by the embedding scorer on the
shown windows. Everything is deterministic. Labels carry source="offline" so SQL tells them apart.

Only `shown` is read, never the feature's other examples: those are the scorers' held-out windows.
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from labeler.embed import embed_texts, is_special_token, token_texts
from labeler.errors import ConfigError, ExplanationParseError
from labeler.score.embedding import auroc
from labeler.settings import get_settings
from labeler.types import FeatureExamples, LabelCandidate, Window

MAX_NGRAM = 3
SMOOTHING = 1.0  # add-one: an unseen background n-gram counts as seen once
MAX_TOKEN_BONUS = 1.0  # extra weight on each window's max token: the clearest instance of the feature
ABSORB_SHARE = 0.8  # a longer n-gram replaces its tail when it covers this share of the tail's weight
N_TOP_TERMS = 4  # terms the phrasings are built from
CONTEXT_RADIUS = 4  # tokens either side of an active token whose words count as its context
SNIPPET_BEFORE, SNIPPET_AFTER = 8, 4  # tokens around the max token that re-ranking embeds

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor
    not now of off on once only or other our ours out over own same she should so some such than that
    the their them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours""".split()
)

_WHITESPACE_NAMES = {"\n": "newline", "\t": "tab", " ": "space"}


@dataclass(frozen=True)
class Term:
    """One n-gram with its counts in active and background positions and its ranking score."""

    key: tuple[str, ...]  # lower-cased token texts
    text: str  # as it reads in the window ("running" for 'run ##ning')
    active_weight: float
    background_count: int
    lift: float
    score: float
    is_symbol: bool  # only punctuation / whitespace
    ends_on_symbol: bool  # the token the feature fires on is punctuation / whitespace

    @property
    def is_content_word(self) -> bool:
        return (
            not self.is_symbol
            and len(self.key) == 1
            and self.text.isalpha()
            and len(self.text) >= 3
            and self.text.lower() not in STOPWORDS
        )


def _token_key(piece: str) -> tuple[str, bool]:
    """Normalised token text and whether it is only punctuation / symbols / whitespace."""
    stripped = piece.strip()
    if not stripped:
        for char, name in _WHITESPACE_NAMES.items():
            if char in piece:
                return name, True
        return "space", True
    is_symbol = all(unicodedata.category(c)[0] in "PSZ" for c in stripped)
    return stripped.lower(), is_symbol


def _max_offset(window: Window, activations: np.ndarray) -> int:
    offset = window.max_position - window.window_start
    return offset if 0 <= offset < len(activations) else int(np.argmax(activations))


def rank_terms(shown: Sequence[Window], *, max_n: int = MAX_NGRAM) -> list[Term]:
    """N-grams with lift > 1 in active positions, best first (ties broken by text for determinism)."""
    active: dict[tuple[str, ...], float] = defaultdict(float)
    background: dict[tuple[str, ...], int] = defaultdict(int)
    display: dict[tuple[str, ...], str] = {}
    symbol: dict[tuple[str, ...], tuple[bool, bool]] = {}
    total_active = [0.0] * (max_n + 1)
    total_background = [0] * (max_n + 1)
    for window in shown:
        if window.token_strs is None:
            raise ConfigError(
                f"window (seq {window.seq_index}, start {window.window_start}) has no token strings; "
                "load examples with tokenizer=... so the offline explainer can read tokens"
            )
        strs = window.token_strs
        pieces = token_texts(strs)
        keys = [_token_key(p) for p in pieces]
        special = [is_special_token(t) for t in strs]
        acts = window.activations()
        is_negative = window.kind == "negative"
        peak = -1 if is_negative or not (acts > 0).any() else _max_offset(window, acts)
        for end in range(len(strs)):
            if special[end]:
                continue
            weight = 0.0 if is_negative else float(acts[end] > 0) + (MAX_TOKEN_BONUS if end == peak else 0.0)
            for n in range(1, max_n + 1):
                start = end - n + 1
                if start < 0 or any(special[start : end + 1]):
                    break
                key = tuple(k for k, _ in keys[start : end + 1])
                if key not in display:
                    display[key] = "".join(pieces[start : end + 1]).strip() or key[-1]
                    symbol[key] = (all(s for _, s in keys[start : end + 1]), keys[end][1])
                if weight > 0:
                    active[key] += weight
                    total_active[n] += weight
                else:
                    background[key] += 1
                    total_background[n] += 1
    n_keys = [0] * (max_n + 1)
    for key in display:
        n_keys[len(key)] += 1
    terms = []
    for key, weight in active.items():
        n = len(key)
        p_active = (weight + SMOOTHING) / (total_active[n] + SMOOTHING * n_keys[n])
        p_background = (background.get(key, 0) + SMOOTHING) / (total_background[n] + SMOOTHING * n_keys[n])
        lift = p_active / p_background
        if lift <= 1.0:
            continue
        terms.append(
            Term(
                key=key,
                text=display[key],
                active_weight=weight,
                background_count=background.get(key, 0),
                lift=lift,
                score=p_active * math.log(lift),
                is_symbol=symbol[key][0],
                ends_on_symbol=symbol[key][1],
            )
        )
    terms.sort(key=lambda t: (-t.score, len(t.key), t.text))
    return terms


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether one n-gram is a contiguous part of the other ('def' and 'def foo')."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return any(long[i : i + len(short)] == short for i in range(len(long) - len(short) + 1))


def top_terms(terms: Sequence[Term], k: int = N_TOP_TERMS) -> list[Term]:
    """The k best distinct terms, a longer n-gram standing in for its last tokens when it covers them.

    'run ##ning' replaces '##ning' when most of the feature's 'ning' is in 'running'. Terms ending on
    punctuation or whitespace only when the feature fires on nothing else.
    """
    words = [t for t in terms if not t.ends_on_symbol]
    pool = words or list(terms)
    extensions: dict[tuple[str, ...], list[Term]] = defaultdict(list)
    for t in pool:
        if len(t.key) > 1:
            extensions[t.key[1:]].append(t)
    chosen: list[Term] = []
    seen_texts: set[str] = set()
    for term in pool:
        best = term
        while True:
            wider = [e for e in extensions.get(best.key, ()) if e.active_weight >= ABSORB_SHARE * best.active_weight]
            if not wider:
                break
            best = max(wider, key=lambda e: (e.active_weight, e.score, e.text))
        text = best.text.lower()
        if text in seen_texts or any(_overlaps(best.key, c.key) for c in chosen):
            continue
        seen_texts.add(text)
        chosen.append(best)
        if len(chosen) == k:
            break
    return chosen


def context_words(shown: Sequence[Window], *, radius: int = CONTEXT_RADIUS, k: int = 3) -> list[str]:
    """Content words that sit near active tokens more than elsewhere: the topic around what fires.

    Counts whole words (WordPiece continuations merged) at inactive positions within `radius` tokens of
    an active one, against the other inactive positions and the shown negative windows; lift-ranked
    with the same smoothing as `rank_terms`.
    """
    near: dict[str, int] = defaultdict(int)
    far: dict[str, int] = defaultdict(int)
    for window in shown:
        pieces = token_texts(window.token_strs or ())
        words, starts = _words(pieces)
        acts = window.activations()
        active_at = np.flatnonzero(acts > 0) if window.kind != "negative" else np.array([], dtype=int)
        for word, (lo, hi) in zip(words, starts):
            if acts[lo:hi].max(initial=0) > 0 and window.kind != "negative":
                continue
            is_near = bool(len(active_at)) and bool((np.abs(active_at - lo) <= radius).any())
            (near if is_near else far)[word] += 1
    vocab = len(set(near) | set(far))
    n_near, n_far = sum(near.values()), sum(far.values())
    scored = []
    for word, count in near.items():
        if len(word) < 3 or not word.isalpha() or word in STOPWORDS:
            continue
        p_near = (count + SMOOTHING) / (n_near + SMOOTHING * vocab)
        p_far = (far.get(word, 0) + SMOOTHING) / (n_far + SMOOTHING * vocab)
        if p_near > p_far and count >= 2:
            scored.append((-(p_near * math.log(p_near / p_far)), word))
    return [word for _, word in sorted(scored)[:k]]


def _words(pieces: Sequence[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """Whole lower-cased words and their token spans, from token pieces that carry their own spacing."""
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for i, piece in enumerate(pieces):
        if not piece.strip():
            continue
        if words and not piece[:1].isspace() and piece.strip().isalnum() and spans[-1][1] == i and words[-1].isalnum():
            words[-1] += piece.strip().lower()
            spans[-1] = (spans[-1][0], i + 1)
        else:
            words.append(piece.strip().lower())
            spans.append((i, i + 1))
    return words, spans


def _quoted(term: Term) -> str:
    return f"'{term.text}'"


def phrase_candidates(terms: Sequence[Term], context: Sequence[str] = ()) -> list[str]:
    """A handful of label phrasings from the top terms and context words, without duplicates."""
    if not terms:
        return []
    first = terms[0]
    phrasings = []
    if first.is_symbol and first.text in _WHITESPACE_NAMES.values():
        phrasings.append(f"{first.text} characters")
    elif " " in first.text:
        phrasings.append(f"the phrase {_quoted(first)}")
    else:
        phrasings.append(f"the token {_quoted(first)}")
    if len(terms) >= 2:
        phrasings.append(f"{_quoted(terms[0])} / {_quoted(terms[1])} tokens")
    if len(terms) >= 3:
        phrasings.append("tokens like " + ", ".join(_quoted(t) for t in terms[:N_TOP_TERMS]))
    numbers = [t for t in terms if t.text.replace(".", "").replace(",", "").isdigit()]
    if len(numbers) >= 2:
        phrasings.append("numbers like " + ", ".join(_quoted(t) for t in numbers[:3]))
    content = [t.text.lower() for t in terms if t.is_content_word]
    if len(content) >= 2:
        phrasings.append("text about " + ", ".join(content[:3]))
    if context:
        phrasings.append(f"{_quoted(first)} in text about " + ", ".join(context))
        if len(content) < 2:
            phrasings.append("text about " + ", ".join(dict.fromkeys([*content, *context])))
    return list(dict.fromkeys(phrasings))


def peak_snippets(windows: Sequence[Window], *, masked: bool = False) -> list[str]:
    """Text around each window's max token; `masked` drops the active tokens from it.

    Short snippets keep re-ranking cheap (about 15 MiniLM word pieces each instead of a whole window);
    the masked ones are the contrast: does a label name what fires rather than its surroundings?
    """
    texts = []
    for w in windows:
        pieces = token_texts(w.token_strs or ())
        acts = w.activations()
        peak = _max_offset(w, acts) if len(acts) else 0
        lo, hi = max(0, peak - SNIPPET_BEFORE), min(len(pieces), peak + SNIPPET_AFTER + 1)
        keep = [p for p, a in zip(pieces[lo:hi], acts[lo:hi]) if not (masked and a > 0)]
        texts.append("".join(keep).strip())
    return texts


def rerank(labels: Sequence[str], shown: Sequence[Window], *, device: str = "auto") -> list[tuple[str, float, float]]:
    """(label, AUROC, similarity gap) per label, best first, scored on snippets of the shown windows.

    Positives: snippets around each active window's max token. Contrast: the same snippets with the
    active tokens removed, plus snippets of any shown negative windows. Ties in AUROC, common with few
    windows, go to the larger mean-similarity gap, then to generation order.
    """
    positives = [w for w in shown if w.kind != "negative" and (w.activations_q > 0).any()]
    negatives = [w for w in shown if w.kind == "negative"]
    pos_texts = peak_snippets(positives)
    neg_texts = peak_snippets(positives, masked=True) + peak_snippets(negatives)
    vectors = embed_texts([*labels, *pos_texts, *neg_texts], device=device)
    sims = vectors[len(labels) :] @ vectors[: len(labels)].T  # [n_texts, n_labels]
    pos, neg = sims[: len(pos_texts)], sims[len(pos_texts) :]
    rows = [
        (label, auroc(pos[:, i], neg[:, i]), float(pos[:, i].mean() - neg[:, i].mean()), i)
        for i, label in enumerate(labels)
    ]
    rows.sort(key=lambda r: (-round(r[1], 6), -round(r[2], 6), r[3]))
    return [(label, value, gap) for label, value, gap, _ in rows]


class OfflineExplainer:
    """Token-lift labels re-ranked by MiniLM similarity; the default when no LLM endpoint is set."""

    name: ClassVar[str] = "offline"
    method: ClassVar[str] = "token-lift"

    def __init__(self, *, device: str | None = None) -> None:
        self.device = device or get_settings().device

    def explain_now(
        self, feature: FeatureExamples, shown: Sequence[Window], n_candidates: int
    ) -> list[LabelCandidate]:
        """Synchronous form of `explain`."""
        if n_candidates < 1:
            raise ConfigError(f"n_candidates must be >= 1, got {n_candidates}")
        active_windows = [w for w in shown if w.kind != "negative" and (w.activations_q > 0).any()]
        if not active_windows:
            raise ExplanationParseError(
                f"feature {feature.feature_index}: none of the {len(shown)} shown windows has an active token; "
                "nothing to explain offline"
            )
        terms = top_terms(rank_terms(shown))
        labels = phrase_candidates(terms, context_words(shown))
        if not labels:
            raise ExplanationParseError(
                f"feature {feature.feature_index} fires only on special tokens in the shown windows; "
                "no offline label can name it"
            )
        ranked = rerank(labels, shown, device=self.device)
        return [
            LabelCandidate(
                feature_index=feature.feature_index, text=label, source="offline", method=self.method, model=""
            )
            for label, _, _ in ranked[:n_candidates]
        ]

    async def explain(
        self, feature: FeatureExamples, shown: Sequence[Window], n_candidates: int
    ) -> list[LabelCandidate]:
        """Runs in a worker thread so a shared event loop keeps serving other requests meanwhile."""
        return await asyncio.to_thread(self.explain_now, feature, shown, n_candidates)
