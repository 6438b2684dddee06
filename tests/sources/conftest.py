"""One offline MiniLM for the whole sources suite: loading it costs seconds, every test reuses it."""

from __future__ import annotations

import os

import pytest

from labeler.sources import LoadedModel, load_model


@pytest.fixture(scope="session")
def minilm() -> LoadedModel:
    os.environ["HF_HUB_OFFLINE"] = "1"  # the demo model must load with no network at all
    return load_model("minilm", device="cpu")
