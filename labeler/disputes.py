"""Dispute rules (DESIGN.md section 6): which features' labels are doubtful, why, and how urgently.

Pure: features and their scored candidates in, one `DisputeDecision` per feature out. Every rule that
fires is kept as a reason with its evidence, so a reviewer sees all of them:

    low_score            the best label scores below `min_score` on some scorer
    candidates_disagree  two candidates of one feature are less similar than `min_candidate_similarity`
    scorers_disagree     the best label's scores spread more than `max_scorer_spread`
    label_collision      the best label is near-identical to another feature's label in the same SAE
                         (cosine >= `collision_similarity`, or the same normalised text); both are marked
    failed               explaining or scoring the feature failed after retries
    human_flag           a reviewer flagged the feature (carried through, never decided by rules)

Priority orders the review queue; see `priority`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from labeler.config import LabelConfig
from labeler.embed import embed_texts

REASONS = ("low_score", "candidates_disagree", "scorers_disagree", "label_collision", "failed", "human_flag")
CLOSED_LABEL_STATUSES = frozenset({"rejected", "superseded"})  # candidates no rule looks at
MAX_COLLISIONS_LISTED = 20  # partners named in one label_collision reason; the count is always exact
COLLISION_ROWS_PER_CHUNK = 1024  # 1024 x 16k features x 4 bytes = 64 MB of similarities at a time

Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ScoreValue:
    method: str
    scorer_model: str
    value: float | None  # None: the scorer skipped this label


@dataclass(frozen=True)
class CandidateInput:
    """One label of a feature with its scores; status as in SQL (candidate | accepted | rejected | ...)."""

    text: str
    label_id: int | None = None
    source: str = "llm"
    status: str = "candidate"
    scores: tuple[ScoreValue, ...] = ()

    def values(self) -> list[float]:
        return [s.value for s in self.scores if s.value is not None]

    def mean_score(self) -> float | None:
        values = self.values()
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class FeatureDisputeInput:
    """What the rules need to know about one feature."""

    feature_index: int
    density: float = 0.0
    candidates: tuple[CandidateInput, ...] = ()
    label_state: str = "labelled"  # pending | labelled | failed
    label_error: str | None = None
    human_flag: Mapping[str, Any] | None = None  # details of a reviewer's flag, kept as a reason


@dataclass(frozen=True)
class LabelRef:
    """The label that stands for a feature when labels of different features are compared."""

    feature_index: int
    text: str


@dataclass(frozen=True)
class DisputeDecision:
    """Every reason that fired for one feature (empty: nothing doubtful) and its queue priority."""

    feature_index: int
    reasons: tuple[tuple[str, dict[str, Any]], ...] = ()
    priority: float = 0.0
    best_label_id: int | None = None

    @property
    def reason_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.reasons)


@dataclass(frozen=True)
class Collision:
    feature_index: int
    text: str
    similarity: float


@dataclass
class _Embeddings:
    """Embeds each distinct text once per evaluation."""

    embed: Embedder
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def of(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if todo:
            for text, vector in zip(todo, self.embed(todo)):
                self.vectors[text] = np.asarray(vector, dtype=np.float32)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts])


def normalize_label(text: str) -> str:
    """Case, spacing and surrounding quotes/punctuation removed: ' Criticism of EA.' == 'criticism of ea'.

    Inner punctuation stays: "the token '('" and "the token ')'" are different labels.
    """
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold())
    return text.strip(" .,;:!?\"'`")


def open_candidates(feature: FeatureDisputeInput) -> list[CandidateInput]:
    return [c for c in feature.candidates if c.status not in CLOSED_LABEL_STATUSES]


def best_candidate(feature: FeatureDisputeInput) -> CandidateInput | None:
    """The label that represents the feature: an accepted one (the latest), else the best mean score.

    Unscored candidates rank after scored ones; ties go to the earliest label (lowest id, then order).
    """
    candidates = open_candidates(feature)
    accepted = [c for c in candidates if c.status == "accepted"]
    if accepted:
        return max(accepted, key=lambda c: (c.label_id is not None, c.label_id or 0))

    def rank(item: tuple[int, CandidateInput]) -> tuple:
        order, c = item
        mean = c.mean_score()
        label_id = c.label_id if c.label_id is not None else math.inf
        return (mean is None, -(mean or 0.0), label_id, order)

    ranked = sorted(enumerate(candidates), key=rank)
    return ranked[0][1] if ranked else None


def find_collisions(
    labels: Sequence[LabelRef],
    threshold: float,
    *,
    against: Sequence[LabelRef] = (),
    embed: Embedder = embed_texts,
) -> dict[int, list[Collision]]:
    """Near-identical labels on different features, among `labels` and between `labels` and `against`.

    Returns feature_index -> its partners (most similar first) for every feature involved, including
    those from `against`, so both sides of a collision are known. One matrix product per chunk of rows.
    """
    return _find_collisions(labels, threshold, against, _Embeddings(embed))


def _find_collisions(
    labels: Sequence[LabelRef], threshold: float, against: Sequence[LabelRef], embeddings: _Embeddings
) -> dict[int, list[Collision]]:
    found: dict[int, dict[int, Collision]] = {}
    everyone = list(labels) + [ref for ref in against if ref.feature_index not in {r.feature_index for r in labels}]
    if len(labels) == 0 or len(everyone) < 2:
        return {}

    def add(a: LabelRef, b: LabelRef, similarity: float) -> None:
        if a.feature_index == b.feature_index:
            return
        for x, y in ((a, b), (b, a)):
            previous = found.setdefault(x.feature_index, {}).get(y.feature_index)
            if previous is None or similarity > previous.similarity:
                found[x.feature_index][y.feature_index] = Collision(y.feature_index, y.text, similarity)

    by_text: dict[str, list[LabelRef]] = {}
    for ref in everyone:
        by_text.setdefault(normalize_label(ref.text), []).append(ref)
    n_mine = len(labels)
    for i, ref in enumerate(labels):
        for other in by_text[normalize_label(ref.text)]:
            add(ref, other, 1.0)

    vectors = embeddings.of([ref.text for ref in everyone])
    for start in range(0, n_mine, COLLISION_ROWS_PER_CHUNK):
        stop = min(start + COLLISION_ROWS_PER_CHUNK, n_mine)
        # columns from `start` on: pairs inside `labels` are compared once (upper triangle), halving the work
        sims = vectors[start:stop] @ vectors[start:].T  # [chunk, everyone from start]
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            i, j = start + r, start + c
            if j < n_mine and j <= i:
                continue
            add(everyone[i], everyone[j], round(float(min(sims[r, c], 1.0)), 4))
    return {
        index: sorted(partners.values(), key=lambda p: (-p.similarity, p.feature_index))
        for index, partners in found.items()
    }


def _low_score(best: CandidateInput, config: LabelConfig) -> dict[str, Any] | None:
    below = [s for s in best.scores if s.value is not None and s.value < config.min_score]
    if not below:
        return None
    return {
        "label_id": best.label_id,
        "label": best.text,
        "min_score": config.min_score,
        "scores": [{"method": s.method, "scorer_model": s.scorer_model, "value": round(s.value, 4)} for s in below],
        "severity": max((config.min_score - s.value) / max(config.min_score, 1e-9) for s in below),
    }


def _scorers_disagree(best: CandidateInput, config: LabelConfig) -> dict[str, Any] | None:
    scored = [s for s in best.scores if s.value is not None]
    if len(scored) < 2:
        return None
    low, high = min(scored, key=lambda s: s.value), max(scored, key=lambda s: s.value)
    spread = high.value - low.value
    if spread <= config.max_scorer_spread:
        return None
    return {
        "label_id": best.label_id,
        "label": best.text,
        "spread": round(spread, 4),
        "max_scorer_spread": config.max_scorer_spread,
        "scores": [{"method": s.method, "scorer_model": s.scorer_model, "value": round(s.value, 4)} for s in scored],
        "severity": (spread - config.max_scorer_spread) / max(1.0 - config.max_scorer_spread, 1e-9),
    }


def _candidates_disagree(
    candidates: Sequence[CandidateInput], config: LabelConfig, embeddings: _Embeddings
) -> dict[str, Any] | None:
    texts = list(dict.fromkeys(c.text for c in candidates))
    if len(texts) < 2:
        return None
    vectors = embeddings.of(texts)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, np.inf)
    i, j = np.unravel_index(int(np.argmin(sims)), sims.shape)
    lowest = float(sims[i, j])
    if lowest >= config.min_candidate_similarity:
        return None
    return {
        "min_similarity": round(lowest, 4),
        "min_candidate_similarity": config.min_candidate_similarity,
        "pair": [texts[min(i, j)], texts[max(i, j)]],
        "n_candidates": len(texts),
        "severity": (config.min_candidate_similarity - lowest) / max(config.min_candidate_similarity + 1.0, 1e-9),
    }


def density_weight(density: float) -> float:
    """0..1 on a log scale: 1e-6 -> 0.05, 1e-4 -> 0.39, 1e-2 -> 0.72, 1 -> 1 (fraction of tokens firing)."""
    return min(1.0, max(0.0, math.log10(1.0 + max(density, 0.0) * 1e6) / 6.0))


def priority(reasons: Sequence[tuple[str, Mapping[str, Any]]], density: float) -> float:
    """Where a dispute sits in the review queue: density-weighted doubt, human flags first.

        doubt    = 1 - prod(1 - d_r)            noisy-OR over the reasons that fired
        d_r      = 1 for failed, label_collision and human_flag, else 0.5 + 0.5 * severity_r
                   (severity 0..1: how far past its threshold the rule fired)
        priority = doubt * (0.25 + 0.75 * density_weight(density)) + (1 if human_flag)

    Density matters because a feature that fires often accounts for more of the model's behaviour, but
    on a log scale and with a floor, so a rare feature's failure still reaches the queue. In [0, 2].
    """
    names = {name for name, _ in reasons}
    keep_going = 1.0
    for name, details in reasons:
        if name in ("failed", "label_collision", "human_flag"):
            d = 1.0
        else:
            d = 0.5 + 0.5 * min(1.0, max(0.0, float(details.get("severity", 0.0))))
        keep_going *= 1.0 - d
    doubt = 1.0 - keep_going
    value = doubt * (0.25 + 0.75 * density_weight(density)) + (1.0 if "human_flag" in names else 0.0)
    return round(value, 6)


def evaluate_disputes(
    features: Sequence[FeatureDisputeInput],
    config: LabelConfig,
    *,
    other_labels: Sequence[LabelRef] = (),
    embed: Embedder = embed_texts,
) -> list[DisputeDecision]:
    """One decision per feature, in input order; a feature with no reasons gets an empty decision.

    `other_labels` are the representative labels of the SAE's features that are not in `features`
    (e.g. labelled by an earlier batch): collisions with them count, and they are not decided here.
    """
    embeddings = _Embeddings(embed)
    best = {f.feature_index: best_candidate(f) for f in features}
    refs = [LabelRef(index, c.text) for index, c in best.items() if c is not None]
    collisions = _find_collisions(refs, config.collision_similarity, other_labels, embeddings)
    decisions = []
    for feature in features:
        reasons: list[tuple[str, dict[str, Any]]] = []
        chosen = best[feature.feature_index]
        if chosen is not None:
            low = _low_score(chosen, config)
            if low:
                reasons.append(("low_score", low))
            disagree = _candidates_disagree(open_candidates(feature), config, embeddings)
            if disagree:
                reasons.append(("candidates_disagree", disagree))
            spread = _scorers_disagree(chosen, config)
            if spread:
                reasons.append(("scorers_disagree", spread))
            partners = collisions.get(feature.feature_index)
            if partners:
                reasons.append(
                    (
                        "label_collision",
                        {
                            "label_id": chosen.label_id,
                            "label": chosen.text,
                            "collision_similarity": config.collision_similarity,
                            "n_features": len(partners),
                            "features": [
                                {"feature_index": p.feature_index, "label": p.text, "similarity": p.similarity}
                                for p in partners[:MAX_COLLISIONS_LISTED]
                            ],
                        },
                    )
                )
        if feature.label_state == "failed":
            reasons.append(("failed", {"error": feature.label_error or "failed without an error message"}))
        if feature.human_flag is not None:
            reasons.append(("human_flag", dict(feature.human_flag)))
        reasons = [(name, _rounded(details)) for name, details in reasons]
        decisions.append(
            DisputeDecision(
                feature_index=feature.feature_index,
                reasons=tuple(reasons),
                priority=priority(reasons, feature.density) if reasons else 0.0,
                best_label_id=chosen.label_id if chosen is not None else None,
            )
        )
    return decisions


def _rounded(details: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON values with floats to 4 places, so stored details compare equal across runs and dialects."""
    out = {}
    for key, value in details.items():
        if isinstance(value, float):
            out[key] = round(value, 4)
        elif isinstance(value, (np.floating, np.integer)):
            out[key] = round(float(value), 4) if isinstance(value, np.floating) else int(value)
        else:
            out[key] = value
    return out
