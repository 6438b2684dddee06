import pytest
import torch
from transformers import AutoModel

from labeler.errors import HookNotFoundError, ModelLoadError
from labeler.sources import load_model
from labeler.sources.model import _minilm_path


def test_demo_model_loads_offline(minilm):
    assert minilm.n_layers == 6
    assert minilm.tokenizer_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.device == torch.device("cpu")
    assert "blocks.3.hook_resid_post" in minilm.hook_names()
    assert minilm.width_at("blocks.3.hook_resid_post") == 384
    assert minilm.width_at("blocks.3.mlp.hook_post") == 1536


@pytest.mark.parametrize("layer", [0, 3, 5])
def test_forward_to_hook_equals_hf_hidden_state(minilm, layer):
    hf = AutoModel.from_pretrained(str(_minilm_path()), attn_implementation="eager").eval()
    generator = torch.Generator().manual_seed(layer)
    tokens = torch.randint(1000, 30000, (3, 40), generator=generator)
    tokens[:, 0] = minilm.start_token_id()
    with torch.inference_mode():
        expected = hf(tokens, output_hidden_states=True).hidden_states[layer + 1]
    got = minilm.forward_to_hook(tokens, f"blocks.{layer}.hook_resid_post")
    assert got.shape == (3, 40, 384)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_forward_to_hook_leaves_other_hooks_alone(minilm):
    hook_point = minilm.model.hook_dict["blocks.1.hook_resid_post"]
    seen = []
    hook_point.add_hook(lambda act, hook: seen.append(act.shape))
    try:
        minilm.forward_to_hook(torch.tensor([[101, 7592, 2088]]), "blocks.1.hook_resid_post")
        assert seen == [torch.Size([1, 3, 384])]
    finally:
        hook_point.remove_hooks()
    assert not hook_point.has_hooks()


def test_forward_to_hooks_is_one_pass_that_stops_at_the_deepest_hook(minilm):
    tokens = torch.randint(1000, 30000, (2, 24), generator=torch.Generator().manual_seed(0))
    tokens[:, 0] = minilm.start_token_id()
    hooks = ["blocks.3.hook_resid_post", "blocks.1.mlp.hook_post", "blocks.3.hook_resid_post"]
    fired = []
    watched = ["blocks.0.hook_resid_post", "blocks.3.hook_resid_post", "blocks.4.hook_resid_post"]
    for name in watched:
        minilm.model.hook_dict[name].add_hook(lambda act, hook, name=name: fired.append(name))
    try:
        got = minilm.forward_to_hooks(tokens, hooks)
    finally:
        for name in watched:
            minilm.model.hook_dict[name].remove_hooks()
    assert fired == ["blocks.0.hook_resid_post", "blocks.3.hook_resid_post"]  # one pass, nothing after layer 3
    assert list(got) == ["blocks.3.hook_resid_post", "blocks.1.mlp.hook_post"]
    for name in got:
        torch.testing.assert_close(got[name], minilm.forward_to_hook(tokens, name), rtol=0, atol=0)
    assert got["blocks.1.mlp.hook_post"].shape == (2, 24, 1536)
    assert not any(minilm.model.hook_dict[name].has_hooks() for name in hooks)


def test_forward_to_hooks_checks_every_hook_first(minilm):
    with pytest.raises(HookNotFoundError, match="blocks.9.hook_resid_post"):
        minilm.forward_to_hooks(torch.tensor([[101, 7592]]), ["blocks.1.hook_resid_post", "blocks.9.hook_resid_post"])
    assert not minilm.model.hook_dict["blocks.1.hook_resid_post"].has_hooks()


def test_layers_and_special_tokens(minilm):
    assert minilm.layer_of("blocks.4.attn.hook_pattern") == 4
    assert minilm.layer_of("embed.hook_out") == -1
    specials = minilm.special_token_ids()
    assert {0, 100, 101, 102, 103} <= specials  # PAD UNK CLS SEP MASK
    assert 7592 not in specials  # "hello"
    assert minilm.start_token_id() == 101 and minilm.separator_token_id() == 102


def test_vocab_reads_back_as_text(minilm):
    vocab = minilm.vocab()
    assert len(vocab) == 30522
    ids = minilm.tokenizer("tokenizing hello", add_special_tokens=False)["input_ids"]
    assert "".join(vocab[i] for i in ids) == " tokenizing hello"
    assert vocab[101] == "[CLS]"


def test_unknown_hook_names_the_layers(minilm):
    with pytest.raises(HookNotFoundError, match=r"blocks.9.hook_resid_post not in model minilm; it has 6 layers \(blocks.0-5\)"):
        minilm.forward_to_hook(torch.tensor([[101, 7592]]), "blocks.9.hook_resid_post")


def test_missing_local_model_folder_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), device="cpu")


def test_unknown_model_offline_says_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        load_model("no-such-org/no-such-model-xyz", device="cpu")
