"""Embedding scorer: does the label sit closer to contexts where the feature fires than to ones where it does not?

Each window's text is embedded with MiniLM and compared with the label's embedding (cosine). The score is
the AUROC of that similarity separating activating from non-activating windows: 0.5 is chance, 1.0 means
every activating window is closer to the label than every non-activating one. No LLM: runs offline.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Sequence

import numpy as np

from labeler.embed import EMBEDDING_MODEL, embed_texts, tokens_to_text
from labeler.errors import ConfigError
from labeler.score import metrics
from labeler.settings import get_settings
from labeler.types import FeatureExamples, ScoreResult, Window


def auroc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float:
    """P(similarity of an activating window > a non-activating one), ties one half (Mann-Whitney U)."""
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("AUROC of NaN values is undefined")
    truth = np.r_[np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)]
    return metrics.auroc(np.concatenate([pos, neg]), truth)


def window_texts(windows: Sequence[Window]) -> list[str]:
    """Decoded text of each window; windows must have been loaded with their token strings."""
    texts = []
    for w in windows:
        if w.token_strs is None:
            raise ConfigError(
                f"window (seq {w.seq_index}, start {w.window_start}) has no token strings; "
                "load examples with tokenizer=... so they decode through the vocab table"
            )
        texts.append(tokens_to_text(w.token_strs))
    return texts


def label_similarities(label: str, texts: Sequence[str], *, device: str = "auto") -> np.ndarray:
    """Cosine similarity of the label with each text (one embedding call for all of them)."""
    vectors = embed_texts([label, *texts], device=device)
    return vectors[1:] @ vectors[0]


def score_label_by_embedding(
    label: str, activating_texts: Sequence[str], non_activating_texts: Sequence[str], *, device: str = "auto"
) -> ScoreResult:
    """The embedding score of one label on already-decoded contexts (the synchronous core)."""
    n_act, n_non = len(activating_texts), len(non_activating_texts)
    counts = {"n_activating": n_act, "n_non_activating": n_non}
    if n_act == 0 or n_non == 0:
        missing = "activating" if n_act == 0 else "non-activating"
        return ScoreResult(
            method=EmbeddingScorer.name,
            scorer_model=EmbeddingScorer.scorer_model,
            value=None,
            n_examples=n_act + n_non,
            details={**counts, "skipped": f"no {missing} windows to compare with"},
        )
    sims = label_similarities(label, [*activating_texts, *non_activating_texts], device=device)
    sims_act, sims_non = sims[:n_act], sims[n_act:]
    return ScoreResult(
        method=EmbeddingScorer.name,
        scorer_model=EmbeddingScorer.scorer_model,
        value=auroc(sims_act, sims_non),
        n_examples=n_act + n_non,
        details={
            **counts,
            "mean_similarity_activating": round(float(sims_act.mean()), 4),
            "mean_similarity_non_activating": round(float(sims_non.mean()), 4),
        },
    )


class EmbeddingScorer:
    """AUROC of MiniLM similarity(label, window text) for activating vs non-activating windows."""

    name: ClassVar[str] = "embedding"
    scorer_model: ClassVar[str] = EMBEDDING_MODEL

    def __init__(self, *, device: str | None = None) -> None:
        self.device = device or get_settings().device

    def score_now(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> ScoreResult:
        """Synchronous form of `score`, for callers without an event loop."""
        return score_label_by_embedding(
            label, window_texts(activating), window_texts(non_activating), device=self.device
        )

    async def score(
        self, label: str, feature: FeatureExamples, activating: Sequence[Window], non_activating: Sequence[Window]
    ) -> ScoreResult:
        """Runs in a worker thread: the forward pass releases the GIL, so LLM scorers keep their event loop."""
        return await asyncio.to_thread(self.score_now, label, feature, activating, non_activating)
