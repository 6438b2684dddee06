"""Check that an SAE fits a model before any job is queued: the hook exists and the widths agree."""

from __future__ import annotations

from labeler.errors import DimensionMismatchError, HookNotFoundError
from labeler.sources.model import LoadedModel, describe_missing_hook
from labeler.sources.sae import LoadedSAE


def validate_sources(model: LoadedModel, sae: LoadedSAE, hook_name: str | None = None) -> str:
    """Return the hook the job will read (default: the SAE's own); raise if it cannot work."""
    hook = hook_name or sae.hook_name
    if not model.has_hook(hook):
        raise HookNotFoundError(describe_missing_hook(model, hook))
    width = model.width_at(hook)
    if width != sae.d_in:
        raise DimensionMismatchError(f"SAE d_in {sae.d_in} != model width {width} at {hook}")
    return hook
