import json
import subprocess
import sys

import torch
from safetensors import safe_open
from sae_lens import SAE

from labeler.demo import DEMO_HOOK, DEMO_MODEL, DEMO_SAE_PATH
from labeler.demo.train import DemoSAETraining, _decode, _encode, fit_topk, save_sae, train_demo_sae
from labeler.sources import load_sae, validate_sources


def test_demo_sae_loads_with_sae_lens_offline():
    # A fresh interpreter with the hub switched off, exactly as a user without network would load it.
    code = (
        "from sae_lens import SAE; import sys; s = SAE.load_from_disk(sys.argv[1]); "
        "print(s.cfg.architecture(), s.cfg.d_in, s.cfg.d_sae, s.W_enc.dtype)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(DEMO_SAE_PATH)], capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    architecture, d_in, d_sae, dtype = result.stdout.split()
    assert (architecture, d_in, dtype) == ("topk", "384", "torch.float32")
    assert 2048 <= int(d_sae) <= 4096


def test_demo_sae_is_small_fp16_and_fits_the_demo_model(minilm):
    weights = DEMO_SAE_PATH / "sae_weights.safetensors"
    assert weights.stat().st_size < 8 * 2**20
    with safe_open(str(weights), "pt") as handle:
        assert {handle.get_tensor(name).dtype for name in handle.keys()} == {torch.float16}
    sae = load_sae(path=str(DEMO_SAE_PATH), device="cpu")
    assert sae.hook_name == DEMO_HOOK and sae.architecture == "topk"
    assert validate_sources(minilm, sae) == DEMO_HOOK
    record = json.loads((DEMO_SAE_PATH / "training.json").read_text())
    assert record["model"] == DEMO_MODEL and record["hook_name"] == DEMO_HOOK


def test_demo_sae_features_are_sparse_on_real_text(minilm):
    sae = load_sae(path=str(DEMO_SAE_PATH), device="cpu")
    tokens = minilm.tokenizer(["The function returns a list of the keys in the dictionary."], return_tensors="pt")["input_ids"]
    acts = sae.encode(minilm.forward_to_hook(tokens, sae.hook_name))
    k = json.loads((DEMO_SAE_PATH / "cfg.json").read_text())["k"]
    assert ((acts > 0).sum(-1) <= k).all() and ((acts > 0).sum(-1)[0, 1:-1] > 0).all()


def test_saved_sae_reads_raw_activations_like_training_did(tmp_path):
    # Training sees x / scale; the saved SAE must give the same features and s * reconstruction on raw x.
    torch.manual_seed(0)
    x = torch.randn(4096, 384) * 7 + 3
    training = DemoSAETraining(d_sae=128, k=8, epochs=1, batch_size_tokens=512, dead_after_tokens=1024)
    weights, scale = fit_topk(x, training, report=lambda line: None)
    sae = SAE.load_from_disk(str(save_sae(tmp_path / "sae", weights, scale, training)))
    raw = x[:64]
    _, values, indices = _encode(raw / scale, weights, training.k)
    expected = torch.zeros(64, 128).scatter(-1, indices, values)
    with torch.no_grad():
        features = sae.encode(raw)
        torch.testing.assert_close(features, expected, atol=2e-2, rtol=2e-2)  # float16 weights on disk
        torch.testing.assert_close(sae.decode(features), scale * _decode(values, indices, weights), atol=0.1, rtol=2e-2)


def test_training_command_produces_a_loadable_sae(minilm, tmp_path):
    tiny = DemoSAETraining(d_sae=64, k=4, n_tokens=4096, epochs=1, batch_size_tokens=256, dead_after_tokens=512)
    lines: list[str] = []
    out = train_demo_sae(tmp_path / "sae", tiny, model=minilm, report=lines.append)
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors", "training.json"]
    assert any(line.startswith("held-out: explained variance") for line in lines)
    record = json.loads((out / "training.json").read_text())
    assert 0 < record["held_out"]["explained_variance"] <= 1
    sae = SAE.load_from_disk(str(out))
    assert (sae.cfg.d_sae, sae.cfg.metadata.hook_name) == (64, DEMO_HOOK)
