"""Geometry for the feature page's pictures (activation histogram, density gauge), drawn as inline SVG.

Only numbers and short labels leave this module; the template draws them with autoescaping, so no
markup is ever built from strings here. Counts use a log scale: activation histograms are heavy-tailed,
and on a linear axis every bin but the first few would be invisible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# Densities below this are drawn at the left edge; one in ten million tokens is rarer than any dataset here.
MIN_LOG10_DENSITY = -7


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class HistogramChart:
    width: int
    height: int
    plot_height: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    max_count: int


@dataclass(frozen=True)
class DensityGauge:
    width: int
    marker_x: float
    ticks: tuple[Tick, ...]
    text: str


def histogram_chart(
    edges: Sequence[float], counts: Sequence[int], *, width: int = 520, height: int = 150
) -> HistogramChart | None:
    """Bars for a histogram of non-zero activations; None when there is nothing to draw."""
    if len(counts) == 0 or len(edges) != len(counts) + 1 or max(counts) <= 0:
        return None
    plot_height = height - 20  # room for the axis labels
    top = math.log1p(max(counts))
    bar_width = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = plot_height * math.log1p(count) / top if count > 0 else 0.0
        bars.append(
            Bar(
                x=round(i * bar_width, 2),
                y=round(plot_height - h, 2),
                width=round(max(bar_width - 1, 0.5), 2),
                height=round(h, 2),
                title=f"{edges[i]:.3g} to {edges[i + 1]:.3g}: {count} tokens",
            )
        )
    ticks = (
        Tick(0, f"{edges[0]:.3g}"),
        Tick(width / 2, f"{edges[len(edges) // 2]:.3g}"),
        Tick(width, f"{edges[-1]:.3g}"),
    )
    return HistogramChart(width, height, plot_height, tuple(bars), ticks, int(max(counts)))


def density_gauge(density: float, *, width: int = 520) -> DensityGauge:
    """Where the feature's firing rate sits on a log axis from 1e-7 to 1."""
    log = math.log10(density) if density > 0 else MIN_LOG10_DENSITY
    fraction = (max(log, MIN_LOG10_DENSITY) - MIN_LOG10_DENSITY) / -MIN_LOG10_DENSITY
    ticks = tuple(
        Tick(round(width * (e - MIN_LOG10_DENSITY) / -MIN_LOG10_DENSITY, 2), f"1e{e}") for e in range(MIN_LOG10_DENSITY, 1)
    )
    text = "never fires" if density <= 0 else f"fires on {density:.3%} of tokens (1 in {1 / density:,.0f})"
    return DensityGauge(width=width, marker_x=round(fraction * width, 2), ticks=ticks, text=text)
