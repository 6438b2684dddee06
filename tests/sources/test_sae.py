import shutil

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from labeler.errors import DimensionMismatchError, HookNotFoundError, SAENotFoundError, SourceError
from labeler.sources import load_sae, validate_sources


def save_sae(folder, *, d_in=384, d_sae=64, hook="blocks.3.hook_resid_post", seed=0):
    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = hook
    StandardSAE(cfg).save_model(folder)
    return folder


def test_local_sae_loads_and_describes_itself(tmp_path):
    folder = save_sae(tmp_path / "sae")
    sae = load_sae(path=str(folder), device="cpu")
    assert (sae.hook_name, sae.d_in, sae.d_sae, sae.architecture) == ("blocks.3.hook_resid_post", 384, 64, "standard")
    fields = sae.store_fields("minilm")
    assert fields["source"] == "local" and fields["model_name"] == "minilm" and len(fields["checksum"]) == 64
    assert sae.encode(torch.randn(2, 5, 384)).shape == (2, 5, 64)


def test_checksum_follows_the_weights_not_the_path(tmp_path):
    first = load_sae(path=str(save_sae(tmp_path / "a", seed=1)), device="cpu")
    copy = shutil.copytree(tmp_path / "a", tmp_path / "b")
    other = load_sae(path=str(save_sae(tmp_path / "c", seed=2)), device="cpu")
    assert load_sae(path=str(copy), device="cpu").checksum == first.checksum
    assert other.checksum != first.checksum


def test_missing_sae_folder(tmp_path):
    with pytest.raises(SAENotFoundError, match="does not exist"):
        load_sae(path=str(tmp_path / "nowhere"))


def test_sae_folder_without_weights(tmp_path):
    folder = save_sae(tmp_path / "sae")
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(SAENotFoundError, match="no weights file sae_weights.safetensors"):
        load_sae(path=str(folder))


def test_sae_folder_without_config(tmp_path):
    folder = save_sae(tmp_path / "sae")
    (folder / "cfg.json").unlink()
    with pytest.raises(SAENotFoundError, match="no cfg.json"):
        load_sae(path=str(folder))


def test_corrupt_weights_are_a_source_error(tmp_path):
    folder = save_sae(tmp_path / "sae")
    (folder / "sae_weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SourceError, match="cannot load SAE"):
        load_sae(path=str(folder))


def test_path_and_release_together_are_refused(tmp_path):
    with pytest.raises(SourceError, match="not both"):
        load_sae(path=str(tmp_path), release="gpt2-small-res-jb", sae_id="blocks.0.hook_resid_pre")


def test_unknown_sae_id_of_known_release():
    with pytest.raises(SAENotFoundError, match="has no sae_id"):
        load_sae(release="gpt2-small-res-jb", sae_id="blocks.99.hook_resid_pre")


def test_validate_accepts_matching_sae(minilm, tmp_path):
    sae = load_sae(path=str(save_sae(tmp_path / "sae")), device="cpu")
    assert validate_sources(minilm, sae) == "blocks.3.hook_resid_post"
    assert validate_sources(minilm, sae, "blocks.1.hook_resid_post") == "blocks.1.hook_resid_post"


def test_validate_rejects_width_mismatch(minilm, tmp_path):
    sae = load_sae(path=str(save_sae(tmp_path / "sae", d_in=512)), device="cpu")
    with pytest.raises(DimensionMismatchError, match="SAE d_in 512 != model width 384 at blocks.3.hook_resid_post"):
        validate_sources(minilm, sae)


def test_validate_rejects_hook_not_in_model(minilm, tmp_path):
    sae = load_sae(path=str(save_sae(tmp_path / "sae", hook="blocks.9.hook_resid_post")), device="cpu")
    with pytest.raises(HookNotFoundError, match="it has 6 layers .*e.g. blocks.3.hook_resid_post"):
        validate_sources(minilm, sae)
