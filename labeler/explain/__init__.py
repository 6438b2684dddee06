"""Explainers by name: one dict, filled by the `register_explainer` lines at the bottom of this file.

Everything else looks an explainer up by name (`build_explainer("llm", ...)`), never by if/elif.
A target is a class or a lazy "module:Class" string (imported on first use, so a worker that never
runs an explainer never imports its dependencies). A class has a `name` ClassVar equal to its key,
implements `labeler.explain.base.Explainer`, and is built by `from_config(config=..., llm=...)` when it
defines that classmethod, else with no arguments. `needs_llm = True` marks explainers that need an endpoint.
"""

from __future__ import annotations

import importlib

from labeler.config import LabelConfig
from labeler.errors import ConfigError
from labeler.explain.base import Explainer

_EXPLAINERS: dict[str, type | str] = {}


def register_explainer(name: str, target: type | str) -> None:
    """Add an explainer under `name`; a second registration of the same name is a bug and raises."""
    if name in _EXPLAINERS:
        raise ValueError(f"explainer {name!r} is already registered")
    _EXPLAINERS[name] = target


def known_explainers() -> tuple[str, ...]:
    return tuple(sorted(_EXPLAINERS))


def explainer_class(name: str) -> type:
    try:
        target = _EXPLAINERS[name]
    except KeyError:
        raise ConfigError(f"unknown explainer {name!r}; known: {', '.join(known_explainers())}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        if getattr(target, "name", None) != name:
            raise ValueError(f"{module}:{attr} is named {getattr(target, 'name', None)!r}, registered as {name!r}")
        _EXPLAINERS[name] = target
    return target


def build_explainer(name: str, *, config: LabelConfig, llm=None) -> Explainer:
    cls = explainer_class(name)
    if hasattr(cls, "from_config"):
        return cls.from_config(config=config, llm=llm)
    return cls()


register_explainer("llm", "labeler.explain.llm:LLMExplainer")
# The offline explainer (labeler/explain/offline.py) registers on the line below.
register_explainer("offline", "labeler.explain.offline:OfflineExplainer")
