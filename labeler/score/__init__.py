"""Scorers by name: one dict, filled by the `register_scorer` lines at the bottom of this file.

Everything else looks a scorer up by name (`build_scorer("detection", ...)`), never by if/elif.
A target is a class or a lazy "module:Class" string (imported on first use). A class has a `name`
ClassVar equal to its key, implements `labeler.score.base.Scorer`, and is built by
`from_config(config=..., llm=...)` when it defines that classmethod, else with no arguments.
`needs_llm = True` marks scorers that need an endpoint; without one the pipeline records them as
skipped. A scorer doing heavy CPU work runs it off the event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import importlib

from labeler.config import LabelConfig
from labeler.errors import ConfigError
from labeler.score.base import Scorer

_SCORERS: dict[str, type | str] = {}


def register_scorer(name: str, target: type | str) -> None:
    """Add a scorer under `name`; a second registration of the same name is a bug and raises."""
    if name in _SCORERS:
        raise ValueError(f"scorer {name!r} is already registered")
    _SCORERS[name] = target


def known_scorers() -> tuple[str, ...]:
    return tuple(sorted(_SCORERS))


def scorer_class(name: str) -> type:
    try:
        target = _SCORERS[name]
    except KeyError:
        raise ConfigError(f"unknown scorer {name!r}; known: {', '.join(known_scorers())}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        if getattr(target, "name", None) != name:
            raise ValueError(f"{module}:{attr} is named {getattr(target, 'name', None)!r}, registered as {name!r}")
        _SCORERS[name] = target
    return target


def build_scorer(name: str, *, config: LabelConfig, llm=None) -> Scorer:
    cls = scorer_class(name)
    if hasattr(cls, "from_config"):
        return cls.from_config(config=config, llm=llm)
    return cls()


register_scorer("detection", "labeler.score.detection:DetectionScorer")
register_scorer("fuzzing", "labeler.score.fuzzing:FuzzingScorer")
register_scorer("simulation", "labeler.score.simulation:SimulationScorer")
# The embedding scorer (labeler/score/embedding.py) registers on the line below.
register_scorer("embedding", "labeler.score.embedding:EmbeddingScorer")
