"""The thin shell around the accumulator: runs the model to the hook and the SAEs, batch by batch.

One forward per batch serves every SAE of the call, at one hook or at several (`forward_to_hooks` runs
once, to the deepest hook, and stops there). Each SAE's activations live only while its accumulator folds
them in, so memory is one batch of [batch, context, d_sae] plus the summaries.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, Sequence

import numpy as np
import torch

from labeler.activations.accumulator import FeatureAccumulator
from labeler.activations.keys import EMPTY_KEY, pack_order, token_keys
from labeler.activations.summary import ShardSummary
from labeler.config import ActivationConfig
from labeler.errors import ConfigError

Progress = Callable[[int, int], None]


class HookedModel(Protocol):
    """What the pass needs from labeler.sources' LoadedModel."""

    device: torch.device

    def forward_to_hook(self, tokens: torch.Tensor, hook_name: str) -> torch.Tensor: ...

    def forward_to_hooks(self, tokens: torch.Tensor, hook_names: Sequence[str]) -> dict[str, torch.Tensor]: ...

    def special_token_ids(self) -> frozenset[int]: ...


class FeatureEncoder(Protocol):
    """What the pass needs from labeler.sources' LoadedSAE."""

    hook_name: str
    d_sae: int

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...


def hook_activations(model: HookedModel, tokens: torch.Tensor, hook_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations at each distinct hook from one forward pass that runs only as deep as the deepest hook."""
    return model.forward_to_hooks(tokens, list(dict.fromkeys(hook_names)))


def _special_ids(model: HookedModel, device: torch.device) -> torch.Tensor:
    return torch.tensor(sorted(model.special_token_ids()), dtype=torch.int64, device=device)


def _encode(sae: FeatureEncoder, x: torch.Tensor) -> torch.Tensor:
    acts = sae.encode(x)
    if acts.dtype != torch.float32:
        acts = acts.to(torch.float32)
    return acts.contiguous()


def batch_keys(batch: torch.Tensor, special_ids: torch.Tensor, first_seq_index: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-token inputs of FeatureAccumulator.update: special mask, packed order and random keys."""
    rows, context = batch.shape
    special = torch.isin(batch, special_ids)
    seq_index = np.arange(first_seq_index, first_seq_index + rows, dtype=np.int64)
    order_np = pack_order(seq_index[:, None], np.arange(context, dtype=np.int64)[None, :]).reshape(-1)
    device = batch.device
    pool_key = torch.from_numpy(token_keys(order_np, seed, purpose="pool")).to(device)
    return {
        "special": special,
        "order": torch.from_numpy(order_np).to(device),
        "reservoir_key": torch.from_numpy(token_keys(order_np, seed, purpose="reservoir")).to(device),
        "pool_key": pool_key.masked_fill_(special.reshape(-1), EMPTY_KEY),
    }


def summarize_activations(
    activations: torch.Tensor,
    tokens: torch.Tensor,
    *,
    special_token_ids: Iterable[int],
    seq_offset: int,
    config: ActivationConfig,
) -> ShardSummary:
    """The pass over precomputed activations [n_seq, context, d_sae] (not modified): the pure core of
    cache_shard, batched the same way, for tests and for activations that come from elsewhere."""
    if activations.shape[:2] != tokens.shape:
        raise ConfigError(f"activations {tuple(activations.shape)} do not line up with tokens {tuple(tokens.shape)}")
    n_seq, context, d_sae = activations.shape
    acc = FeatureAccumulator(d_sae=d_sae, context_size=context, config=config, device=activations.device)
    special_ids = torch.tensor(sorted(special_token_ids), dtype=torch.int64, device=activations.device)
    with torch.inference_mode():
        for start in range(0, n_seq, config.batch_size):
            batch = tokens[start : start + config.batch_size].to(activations.device)
            acts = activations[start : start + config.batch_size].to(torch.float32).clone()
            acc.update(acts, **batch_keys(batch, special_ids, seq_offset + start, config.seed))
    return acc.finish(tokens, seq_offset)


def cache_shard(
    model: HookedModel,
    saes: Sequence[FeatureEncoder],
    tokens: torch.Tensor,
    *,
    seq_offset: int,
    config: ActivationConfig,
    progress: Progress | None = None,
) -> list[ShardSummary]:
    """One streaming pass over `tokens` [n_seq, context] for every SAE; one summary per SAE, in order.

    `seq_offset` is the global index of tokens[0], so every seq_index in the summaries is global and
    shard summaries merge. Every token is counted, the last partial batch included. `progress(done,
    total)` is called after each batch with token counts (special tokens included).

    Sequential on purpose: folding a batch on a second thread while the next forward runs measured no
    better on 2 cores (median ratio 0.889 vs 0.922), since the forward already keeps both cores busy.
    """
    if not saes:
        raise ConfigError("cache_shard needs at least one SAE")
    if tokens.dim() != 2 or tokens.shape[0] == 0:
        raise ConfigError(f"tokens must be a non-empty [n_sequences, context] tensor, got shape {tuple(tokens.shape)}")
    n_seq, context = tokens.shape
    device = torch.device(model.device)
    special_ids = _special_ids(model, device)
    accumulators = [
        FeatureAccumulator(d_sae=int(sae.d_sae), context_size=context, config=config, device=device) for sae in saes
    ]
    total = n_seq * context
    with torch.inference_mode():
        for start in range(0, n_seq, config.batch_size):
            batch = tokens[start : start + config.batch_size].to(device, non_blocking=True)
            keys = batch_keys(batch, special_ids, seq_offset + start, config.seed)
            by_hook = hook_activations(model, batch, [sae.hook_name for sae in saes])
            for sae, acc in zip(saes, accumulators):
                acc.update(_encode(sae, by_hook[sae.hook_name]), **keys)
            del by_hook
            if progress is not None:
                progress((start + batch.shape[0]) * context, total)
    return [acc.finish(tokens, seq_offset) for acc in accumulators]


def feature_activations_on_tokens(
    model: HookedModel, sae: FeatureEncoder, token_ids, *, zero_special_tokens: bool = True
) -> torch.Tensor:
    """Every feature's activation on every token of one sequence: float32 [seq, d_sae] on the CPU.

    Special tokens read 0 by default, exactly as stored windows show them (they are never ranked).
    """
    ids = torch.as_tensor(np.asarray(token_ids), dtype=torch.int64).reshape(1, -1)
    device = torch.device(model.device)
    with torch.no_grad():  # not inference_mode: callers may edit the result in place
        ids = ids.to(device)
        acts = _encode(sae, model.forward_to_hook(ids, sae.hook_name))[0]
        if zero_special_tokens:
            acts = acts.masked_fill(torch.isin(ids[0], _special_ids(model, device))[:, None], 0.0)
        return acts.cpu()
