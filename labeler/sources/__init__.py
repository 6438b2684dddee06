"""Sources: the model, the SAE and the dataset a job reads, each loaded and checked before queueing.

    load_model("minilm")                      -> LoadedModel   (forward_to_hook stops at the hook's layer)
    load_sae(path=DIR) / load_sae(release=, sae_id=) -> LoadedSAE (checksum = SQL identity)
    load_dataset("builtin", model)            -> TokenizedDataset [n_sequences, context_size]
    validate_sources(model, sae)              -> hook name, or HookNotFoundError / DimensionMismatchError
"""

from labeler.sources.dataset import TokenizedDataset, load_dataset
from labeler.sources.model import LoadedModel, load_model, resolve_device
from labeler.sources.sae import LoadedSAE, load_sae
from labeler.sources.validate import validate_sources

__all__ = [
    "LoadedModel",
    "LoadedSAE",
    "TokenizedDataset",
    "load_dataset",
    "load_model",
    "load_sae",
    "resolve_device",
    "validate_sources",
]
