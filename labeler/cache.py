"""Process-wide caches for heavy objects (models, SAEs, the embedding encoder)."""

from __future__ import annotations

import threading
from functools import lru_cache, wraps
from typing import Callable, TypeVar

T = TypeVar("T")

_LOAD_LOCK = threading.RLock()


def load_once(maxsize: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """An lru_cache whose loads run one at a time in the process.

    Worker threads asking for the same model must not load it concurrently: parallel HF /
    transformer_lens loads fail ("Cannot copy out of meta tensor") or half-import transformers.
    """

    def decorate(load: Callable[..., T]) -> Callable[..., T]:
        cached = lru_cache(maxsize=maxsize)(load)

        @wraps(load)
        def wrapper(*args, **kwargs) -> T:
            with _LOAD_LOCK:
                return cached(*args, **kwargs)

        wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return wrapper

    return decorate
