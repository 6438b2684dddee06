"""Labelling a batch of features: explain, score, account; then persist through the store.

    label_features(features, *, config, llm, explainer=None, scorers=None) -> list[FeatureLabelResult]
    llm_context_for(config, *, job_id=None) -> LLMContext | None
    persist_label_results(session, *, sae_id, job_id, results)
"""

from labeler.label.persist import llm_context_for, persist_label_results
from labeler.label.pipeline import FeatureLabelResult, label_features, resolve_explainer
from labeler.label.split import ExampleSplit, split_examples

__all__ = [
    "ExampleSplit",
    "FeatureLabelResult",
    "label_features",
    "llm_context_for",
    "persist_label_results",
    "resolve_explainer",
    "split_examples",
]
