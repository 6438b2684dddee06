"""Train the demo SAE: a small TopK SAE on MiniLM's residual stream over the built-in corpus, on CPU.

Runs sae_lens's own `LanguageModelSAETrainingRunner` on the `TransformerBridge`, fed with sequences
from `labeler.sources.load_dataset` (shuffled with a fixed seed: the corpus is ordered by source file,
and a training buffer should not see one module's docstrings at a time). Special tokens ([CLS],
[SEP]) are left out of training: [CLS] carries outlier activations that would otherwise claim
features of their own. Weights are saved in float16 (a few MB, committed) with a float32 config, so
`SAE.load_from_disk` gives float32 tensors.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from labeler.demo import DEMO_DATASET, DEMO_HOOK, DEMO_MODEL
from labeler.sources import LoadedModel, load_dataset, load_model
from labeler.sources.sae import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

TRAINING_RECORD = "training.json"  # how the shipped SAE was made, next to its weights


@dataclass(frozen=True)
class DemoSAETraining:
    """Everything that decides the demo SAE. ~1M tokens take ~10 minutes on 2 busy CPU cores."""

    hook_name: str = DEMO_HOOK
    d_sae: int = 3072
    k: int = 24
    n_tokens: int = 1_048_576  # training tokens; the corpus is repeated if it holds fewer
    dataset_tokens: int | None = None  # tokens of the corpus to read; None = as many as training uses
    context_size: int = 128
    batch_size_tokens: int = 1024  # ~1000 Adam steps over 1M tokens; the forward pass, not the step, is the cost
    lr: float = 5e-4
    buffer_sequences: int = 256  # sequences' activations mixed before batching (256 x 128 x 384 fp32 = 50 MB)
    seed: int = 0


def train_demo_sae(out_dir: str | Path, training: DemoSAETraining = DemoSAETraining(),
                   model: LoadedModel | None = None) -> Path:
    """Train, then save cfg.json + float16 sae_weights.safetensors + training.json into out_dir.

    `model`: an already loaded CPU MiniLM to reuse (tests); loaded here when None.
    """
    from datasets import Dataset
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

    torch.manual_seed(training.seed)
    model = model or load_model(DEMO_MODEL, device="cpu")
    data = load_dataset(DEMO_DATASET, model, context_size=training.context_size,
                        n_tokens=training.dataset_tokens or training.n_tokens)
    order = torch.randperm(data.n_sequences, generator=torch.Generator().manual_seed(training.seed))
    sequences = Dataset.from_dict({"input_ids": data.tokens[order].tolist()})

    work_dir = Path(out_dir).with_name(Path(out_dir).name + ".training")
    cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=model.width_at(training.hook_name), d_sae=training.d_sae, k=training.k,
                                  dtype="float32", device="cpu"),
        model_name=DEMO_MODEL,
        model_class_name="TransformerBridge",
        hook_name=training.hook_name,
        is_dataset_tokenized=True,
        streaming=False,
        context_size=training.context_size,
        prepend_bos=False,  # sequences already start with [CLS]
        exclude_special_tokens=sorted(model.special_token_ids()),
        training_tokens=training.n_tokens,
        train_batch_size_tokens=training.batch_size_tokens,
        store_batch_size_prompts=32,
        n_batches_in_buffer=training.buffer_sequences,  # sae_lens counts this buffer in sequences
        lr=training.lr,
        lr_warm_up_steps=20,
        device="cpu",
        seed=training.seed,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=str(work_dir / "checkpoints"),
        n_checkpoints=0,
        output_path=str(work_dir / "final"),
        verbose=False,
    )
    logging.getLogger("sae_lens").setLevel(logging.ERROR)  # it warns that overrides are not reproducible
    LanguageModelSAETrainingRunner(cfg, override_dataset=sequences, override_model=model.model).run()
    out = _store_fp16(work_dir / "final", Path(out_dir), training, data.content_hash)
    shutil.rmtree(work_dir)
    return out


def _store_fp16(trained: Path, out: Path, training: DemoSAETraining, dataset_hash: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    weights = {name: t.to(torch.float16).contiguous() for name, t in load_file(trained / SAE_WEIGHTS_FILENAME).items()}
    save_file(weights, out / SAE_WEIGHTS_FILENAME)
    config = json.loads((trained / SAE_CFG_FILENAME).read_text())
    config["dtype"] = "float32"
    config["device"] = "cpu"
    (out / SAE_CFG_FILENAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    record = {**asdict(training), "model": DEMO_MODEL, "dataset": DEMO_DATASET, "dataset_content_hash": dataset_hash,
              "weights_dtype": "float16", "torch": torch.__version__}
    (out / TRAINING_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out
