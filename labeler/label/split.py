"""Which windows the explainer sees and which the scorers judge: disjoint, deterministically.

The explainer gets top[0::2] and the even ranks of each quantile bin; the scorers get top[1::2], the
odd ranks, and the negatives. A scorer window that overlaps a shown window (same sequence, overlapping
span) is dropped too: a label is never judged on text the explainer read. Half of each side is top
examples and half quantile examples, taken round-robin across bins so every activation level is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from labeler.types import FeatureExamples, Window


@dataclass(frozen=True)
class ExampleSplit:
    shown: tuple[Window, ...]
    activating: tuple[Window, ...]
    non_activating: tuple[Window, ...]


def window_key(window: Window) -> tuple[int, int]:
    return (window.seq_index, window.window_start)


def _overlaps(window: Window, spans: dict[int, list[tuple[int, int]]]) -> bool:
    start, stop = window.window_start, window.window_start + len(window.token_ids)
    return any(start < b and a < stop for a, b in spans.get(window.seq_index, ()))


def _round_robin(windows: Sequence[Window]) -> list[Window]:
    """Quantile windows reordered bin by bin: q0 r0, q1 r0, ..., q0 r2, q1 r2, ..."""
    bins: dict[int, list[Window]] = {}
    for w in sorted(windows, key=lambda w: (w.quantile, w.rank)):
        bins.setdefault(w.quantile, []).append(w)
    out: list[Window] = []
    depth = 0
    while len(out) < len(windows):
        out.extend(b[depth] for b in bins.values() if depth < len(b))
        depth += 1
    return out


def _mix(top: Sequence[Window], quantile: Sequence[Window], n: int) -> list[Window]:
    """Up to n windows: half from `top`, half from `quantile`, either side filling in for the other."""
    n_top = min(len(top), max(n - len(quantile), (n + 1) // 2))
    n_quantile = min(len(quantile), n - n_top)
    return [*top[:n_top], *quantile[:n_quantile]]


def _unique(windows: Iterable[Window]) -> list[Window]:
    seen: set[tuple[int, int]] = set()
    out = []
    for w in windows:
        if window_key(w) not in seen:
            seen.add(window_key(w))
            out.append(w)
    return out


def split_examples(feature: FeatureExamples, *, n_explain: int, n_score: int) -> ExampleSplit:
    top = sorted(feature.of_kind("top"), key=lambda w: w.rank)
    quantile = feature.of_kind("quantile")
    negatives = sorted(feature.of_kind("negative"), key=lambda w: w.rank)

    shown = _unique(
        _mix(top[0::2], _round_robin([w for w in quantile if w.rank % 2 == 0]), n_explain)
    )
    spans: dict[int, list[tuple[int, int]]] = {}
    for w in shown:
        spans.setdefault(w.seq_index, []).append((w.window_start, w.window_start + len(w.token_ids)))

    def held_out(windows: Sequence[Window]) -> list[Window]:
        return [w for w in windows if not _overlaps(w, spans)]

    score_top = held_out(top[1::2])
    score_quantile = held_out(_round_robin([w for w in quantile if w.rank % 2 == 1]))
    activating = _unique(_mix(score_top, score_quantile, n_score))
    return ExampleSplit(shown=tuple(shown), activating=tuple(activating), non_activating=tuple(negatives[:n_score]))
