"""Labelling a batch of features: explain, score, account; then persist through the store.

    label_features(features, *, config, llm, explainer=None, scorers=None, sink=None) -> list[FeatureLabelResult]
    llm_context_for(config, *, job_id=None) -> LLMContext | None
    persist_label_results(session, *, sae_id, job_id, results)
    BatchWriter(sae_id=, job_id=, budget=)   the sink that writes while a batch runs, budget kept in step
"""

from labeler.label.persist import BatchWriter, llm_context_for, persist_label_results
from labeler.label.pipeline import FeatureLabelResult, label_features, resolve_explainer
from labeler.label.split import ExampleSplit, split_examples

__all__ = [
    "BatchWriter",
    "ExampleSplit",
    "FeatureLabelResult",
    "label_features",
    "llm_context_for",
    "persist_label_results",
    "resolve_explainer",
    "split_examples",
]
