"""Place each example's window on its whole sequence and give every token a colour level (pure functions).

Activations are known only inside the captured window (the engine keeps windows, not every token's
activation), so tokens outside it are shown without a colour and say so on hover, never as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from labeler.store.review import StoredExample

N_LEVELS = 10  # colour steps 1..10 (CSS classes lv1..lv10); 0 = not firing


@dataclass(frozen=True)
class ContextToken:
    text: str
    activation: float | None  # None: outside the captured window, activation unknown
    level: int  # 0..N_LEVELS; relative to the feature's maximum
    is_max: bool

    @property
    def title(self) -> str:
        if self.activation is None:
            return "outside the captured window: activation not stored"
        return f"{self.activation:.3f}"


@dataclass(frozen=True)
class ExampleContext:
    kind: str
    quantile: int
    rank: int
    seq_index: int
    max_activation: float
    full_context: bool  # False when the sequence was not stored: the window alone is shown
    tokens: tuple[ContextToken, ...]


@dataclass(frozen=True)
class ExampleGroup:
    key: str
    title: str
    examples: tuple[ExampleContext, ...]


def activation_level(value: float, feature_max: float) -> int:
    """0 for a silent token; otherwise 1..N_LEVELS, so the weakest firing token is still visible."""
    if value <= 0 or feature_max <= 0:
        return 0
    return max(1, min(N_LEVELS, math.ceil(N_LEVELS * value / feature_max)))


def example_context(example: StoredExample, feature_max: float) -> ExampleContext:
    """The whole sequence with the window's activations placed at their positions."""
    window = example.window
    # float32 products (byte * scale) print as 1.7999999523; 6 significant digits is what was stored.
    values = [float(f"{v:.6g}") for v in window.activations()]
    window_strs = window.token_strs or tuple(f"<{int(t)}>" for t in window.token_ids)
    start, stop = window.window_start, window.window_start + len(values)
    context = example.context_strs
    # A sequence that does not hold the window's tokens where the window says (a stale row) is not used.
    full = context is not None and stop <= len(context) and tuple(context[start:stop]) == tuple(window_strs)
    if full:
        texts, offset = context, 0
    else:
        texts, offset = window_strs, start
    tokens = []
    for position, text in enumerate(texts, start=offset):
        inside = start <= position < stop
        value = values[position - start] if inside else None
        tokens.append(
            ContextToken(
                text=text,
                activation=value,
                level=activation_level(value, feature_max) if value is not None else 0,
                is_max=inside and position == window.max_position and window.kind != "negative",
            )
        )
    return ExampleContext(
        kind=window.kind,
        quantile=window.quantile,
        rank=window.rank,
        seq_index=window.seq_index,
        max_activation=window.max_activation,
        full_context=full,
        tokens=tuple(tokens),
    )


def group_examples(examples: Iterable[StoredExample], feature_max: float) -> tuple[ExampleGroup, ...]:
    """Top first, then the quantile bins strongest first, then the negatives; empty groups dropped."""
    contexts = [example_context(e, feature_max) for e in examples]
    if feature_max <= 0:
        feature_max = max((c.max_activation for c in contexts), default=0.0)
        contexts = [example_context(e, feature_max) for e in examples]
    groups = [ExampleGroup("top", "Top activations", tuple(c for c in contexts if c.kind == "top"))]
    bins: dict[int, tuple[ExampleContext, ...]] = {}
    for q in sorted({c.quantile for c in contexts if c.kind == "quantile"}):
        bins[q] = tuple(c for c in contexts if c.kind == "quantile" and c.quantile == q)
    # Ordered by what the bin holds, not by its number, so the page reads strongest to weakest either way.
    for q, members in sorted(bins.items(), key=lambda kv: -max(c.max_activation for c in kv[1])):
        low = min(c.max_activation for c in members)
        high = max(c.max_activation for c in members)
        span = f"{high:.3g}" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g} to {high:.3g}"
        groups.append(ExampleGroup(f"quantile-{q}", f"Quantile bin {q} (max {span})", members))
    groups.append(
        ExampleGroup("negative", "Negatives (feature silent)", tuple(c for c in contexts if c.kind == "negative"))
    )
    return tuple(g for g in groups if g.examples)


def try_tokens(pairs: Iterable[tuple[str, float]], feature_max: float) -> tuple[ContextToken, ...]:
    """Per-token activations from `try_text`, coloured on the same scale as the stored examples."""
    pairs = [(text, float(value)) for text, value in pairs]
    scale = feature_max if feature_max > 0 else max((v for _, v in pairs), default=0.0)
    best = max(range(len(pairs)), key=lambda i: pairs[i][1], default=None)
    return tuple(
        ContextToken(text, value, activation_level(value, scale), i == best and value > 0)
        for i, (text, value) in enumerate(pairs)
    )
