"""The activation engine: one streaming pass over a tokenized dataset for any number of SAEs.

    cache_shard(model, saes, tokens, seq_offset=, config=)  -> [ShardSummary per SAE]   (the gpu task)
    merge_summaries([ShardSummary, ...])                    -> ShardSummary             (exact)
    select_examples(summary, config)                        -> [FeatureExamplesDraft]   (top/quantile/negative)
    persist_features(session, sae_id=, dataset_id=, ...)                                 (through labeler.store)
    feature_activations_on_tokens(model, sae, token_ids)    -> [seq, d_sae]             ("try it", checks)

Per feature a summary keeps: exact top-k (value, position, window), a uniform random-key reservoir of
firing positions (for quantile-stratified examples), a pool of random positions (negatives), the number of
firing tokens, their sum, max (= the top entry) and a fixed-grid histogram. Everything merges exactly, so
shards are the unit of work; memory is O(features x (top_k + reservoir) x window) plus one batch.
See accumulator.py for the measured reasons behind the algorithm.
"""

from labeler.activations.engine import cache_shard, feature_activations_on_tokens, hook_activations, summarize_activations
from labeler.activations.persist import persist_features
from labeler.activations.select import FeatureExamplesDraft, select_examples
from labeler.activations.summary import ShardSummary, merge_summaries

__all__ = [
    "FeatureExamplesDraft",
    "ShardSummary",
    "cache_shard",
    "feature_activations_on_tokens",
    "hook_activations",
    "merge_summaries",
    "persist_features",
    "select_examples",
    "summarize_activations",
]
