"""Tokens/s of LoadedModel.forward_to_hook against the bare Hugging Face model cut at the same layer.

    .venv/bin/python bench/sources_forward.py [--layer 3] [--batch 32] [--repeat 5] [--threads 2]

Three ways to get MiniLM's blocks.L.hook_resid_post on the same tokens, interleaved per repeat so
machine load hits each alike; prints the median tokens/s of each and its ratio to the bare model:
  bare HF     BertModel with only layers 0..L kept, eager attention (what the bridge runs), no hooks
  rwc         TransformerBridge.run_with_cache(names_filter=[hook], stop_at_layer=L+1)
  ours        forward_to_hook: one capture hook that raises as soon as the activation exists
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeler.sources import load_dataset, load_model  # noqa: E402
from labeler.sources.model import _minilm_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModel

    model = load_model("minilm", device="cpu")
    hook = f"blocks.{args.layer}.hook_resid_post"
    tokens = load_dataset("builtin", model, n_tokens=args.batch * 128).tokens
    bare = AutoModel.from_pretrained(str(_minilm_path()), attn_implementation="eager").eval()
    bare.encoder.layer = bare.encoder.layer[: args.layer + 1]

    ways = {
        "bare HF": lambda: bare(tokens).last_hidden_state,
        "rwc": lambda: model.model.run_with_cache(tokens, names_filter=[hook], stop_at_layer=args.layer + 1)[1][hook],
        "ours": lambda: model.forward_to_hook(tokens, hook),
    }
    with torch.inference_mode():
        reference = ways["bare HF"]()
        for name, run in ways.items():
            assert torch.allclose(run(), reference, atol=1e-5), name
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):
        for name, run in ways.items():
            start = time.perf_counter()
            with torch.inference_mode():
                run()
            times[name].append(time.perf_counter() - start)
    n_tokens = tokens.numel()
    base = n_tokens / statistics.median(times["bare HF"])
    print(f"MiniLM to {hook}, batch {tuple(tokens.shape)}, {args.threads} threads, median of {args.repeat}")
    for name, values in times.items():
        rate = n_tokens / statistics.median(values)
        print(f"  {name:8s} {rate:9,.0f} tokens/s   ratio to bare {rate / base:.2f}")


if __name__ == "__main__":
    main()
