"""Load a sae_lens SAE from a local folder or a pretrained release, and fingerprint its weights.

The checksum is the SAE's identity in SQL (with the hook): the same weights submitted twice, from any
path, are one SAE, and a retrained SAE saved over the same folder is a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from labeler.errors import SAENotFoundError, SourceError
from labeler.sources.model import resolve_device, resolve_dtype

SAE_CFG_FILENAME = "cfg.json"
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
_HASH_CHUNK_BYTES = 1 << 20


@dataclass
class LoadedSAE:
    """An SAE ready to encode activations, with what SQL needs to recognise it again."""

    sae: Any
    hook_name: str
    d_in: int
    d_sae: int
    architecture: str
    checksum: str
    source: str  # local | pretrained
    release: str | None
    sae_id: str | None
    path: str | None
    name: str

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] -> [..., d_sae] feature activations, without autograd."""
        param = next(self.sae.parameters())
        with torch.no_grad():  # not inference_mode: callers may edit the result in place
            return self.sae.encode(x.to(device=param.device, dtype=param.dtype))

    def store_fields(self, model_name: str) -> dict:
        """Keyword arguments for `labeler.store.sources.upsert_sae`."""
        return {
            "name": self.name, "source": self.source, "release": self.release, "sae_id": self.sae_id,
            "path": self.path, "model_name": model_name, "hook_name": self.hook_name, "d_in": self.d_in,
            "d_sae": self.d_sae, "architecture": self.architecture, "checksum": self.checksum,
        }


def load_sae(*, path: str | None = None, release: str | None = None, sae_id: str | None = None,
             device: str = "auto", dtype: str = "float32", hook_name: str | None = None) -> LoadedSAE:
    """Load from `path` (a sae_lens folder) or from `release` + `sae_id` (sae_lens's pretrained directory).

    `hook_name` overrides the hook recorded in the SAE's config (needed when the config has none).
    """
    torch_device = resolve_device(device)
    resolve_dtype(dtype)
    if path is not None and (release is not None or sae_id is not None):
        raise SourceError("give either an SAE path or a release and sae_id, not both")
    if path is not None:
        return _load_local(Path(path).expanduser(), str(torch_device), dtype, hook_name)
    if release is None or sae_id is None:
        raise SourceError("an SAE needs a path, or both a release and an sae_id")
    return _load_pretrained(release, sae_id, str(torch_device), dtype, hook_name)


def _load_local(folder: Path, device: str, dtype: str, hook_name: str | None) -> LoadedSAE:
    from sae_lens import SAE

    check_sae_folder(folder)
    try:
        sae = SAE.load_from_disk(str(folder), device=device, dtype=dtype)
    except Exception as exc:  # safetensors/json/config errors of many types, all meaning "cannot load"
        raise SourceError(f"cannot load SAE from {folder}: {exc}") from exc
    checksum = sha256_files([folder / SAE_WEIGHTS_FILENAME])
    return _wrap(sae, hook_name, checksum=checksum, source="local", release=None, sae_id=None,
                 path=str(folder.resolve()), name=folder.resolve().name, where=str(folder))


def check_sae_folder(folder: Path) -> None:
    """Say exactly what is missing before sae_lens fails with a less specific error."""
    if not folder.exists():
        raise SAENotFoundError(f"SAE folder {folder} does not exist")
    if not folder.is_dir():
        raise SAENotFoundError(f"SAE path {folder} is a file; expected a folder with {SAE_CFG_FILENAME} "
                               f"and {SAE_WEIGHTS_FILENAME}")
    if not (folder / SAE_CFG_FILENAME).is_file():
        raise SAENotFoundError(f"SAE folder {folder} has no {SAE_CFG_FILENAME} (the sae_lens config)")
    if not (folder / SAE_WEIGHTS_FILENAME).is_file():
        raise SAENotFoundError(f"SAE folder {folder} has no weights file {SAE_WEIGHTS_FILENAME}")
    try:
        json.loads((folder / SAE_CFG_FILENAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"SAE config {folder / SAE_CFG_FILENAME} is not readable JSON: {exc}") from exc


def _load_pretrained(release: str, sae_id: str, device: str, dtype: str, hook_name: str | None) -> LoadedSAE:
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release in directory and sae_id not in directory[release].saes_map:
        some = ", ".join(sorted(directory[release].saes_map)[:5])
        raise SAENotFoundError(f"release {release} has no sae_id {sae_id!r}; e.g. {some}")
    try:
        sae = SAE.from_pretrained(release, sae_id, device=device, dtype=dtype)
    except ValueError as exc:
        raise SAENotFoundError(f"SAE {release}/{sae_id} not found: {exc}") from exc
    except Exception as exc:  # hub/network errors of many types
        raise SourceError(f"cannot download SAE {release}/{sae_id}: {exc} "
                          "(offline? HF_HUB_OFFLINE=1 only finds SAEs already cached)") from exc
    checksum = sha256_state_dict(sae.state_dict())
    return _wrap(sae, hook_name, checksum=checksum, source="pretrained", release=release, sae_id=sae_id,
                 path=None, name=f"{release}/{sae_id}", where=f"{release}/{sae_id}")


def _wrap(sae: Any, hook_name: str | None, *, where: str, **fields: Any) -> LoadedSAE:
    hook = hook_name or sae.cfg.metadata.hook_name
    if not hook:
        raise SourceError(f"SAE {where} records no hook_name in its config; give the hook explicitly")
    sae.eval()
    return LoadedSAE(sae=sae, hook_name=hook, d_in=int(sae.cfg.d_in), d_sae=int(sae.cfg.d_sae),
                     architecture=str(sae.cfg.architecture()), **fields)


def sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_state_dict(state: dict[str, torch.Tensor]) -> str:
    """Hash of names, dtypes, shapes and bytes: stable for the same weights however they were fetched."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
