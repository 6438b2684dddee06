"""Activation stage vs bare forward + encode, and peak memory at N and 2N tokens.

    .venv/bin/python bench/activation_pass.py [--n-tokens 204800] [--shards 2] [--repeats 2]

Prints `activation_stage_ratio=<x>`: tokens/s of the whole activation stage (cache_shard over the
shards + merge_summaries + select_examples; SQL excluded) divided by tokens/s of a bare
`forward_to_hook` + `encode` over the same batches, measured back to back in one process, best of
`--repeats` each (wall clock; process CPU time printed beside it, since this machine is shared).
Then `peak_rss_mb_N=... peak_rss_mb_2N=...`: ru_maxrss of a fresh subprocess running the stage on N
and on 2N tokens; it should stay flat (the summaries are O(features), not O(tokens)).

Uses the demo model and SAE (labeler.demo). Where the demo SAE is not there yet, it uses a random
6144-feature SAE whose encoder biases are set so each feature fires on a log-uniform 0.01-4 % of
tokens (~1 % on average, like a trained SAE) and says so.
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from labeler.activations import cache_shard, merge_summaries, select_examples
from labeler.config import ActivationConfig
from labeler.sources import load_dataset, load_model, load_sae

FALLBACK_HOOK = "blocks.3.hook_resid_post"
FALLBACK_D_SAE = 6144


def demo_sources() -> tuple[str, str, str | None]:
    """(model name, hook, SAE folder or None when the demo SAE is not committed yet)."""
    try:
        from labeler import demo
    except ImportError:
        return "minilm", FALLBACK_HOOK, None
    path = Path(demo.DEMO_SAE_PATH)
    return demo.DEMO_MODEL, demo.DEMO_HOOK, (str(path) if (path / "cfg.json").is_file() else None)


def calibrated_random_sae(model, hook: str, tokens: torch.Tensor, folder: Path, d_sae: int = FALLBACK_D_SAE) -> str:
    """A random StandardSAE saved with sae_lens, biased so feature f fires on a chosen fraction of tokens."""
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=model.width_at(hook), d_sae=d_sae))
    sae.cfg.metadata.hook_name = hook
    with torch.inference_mode():
        x = model.forward_to_hook(tokens, hook).reshape(-1, sae.cfg.d_in)
        pre = (x - sae.b_dec) @ sae.W_enc
        density = torch.exp(torch.empty(d_sae).uniform_(np.log(1e-4), np.log(4e-2)))
        ranked = pre.sort(dim=0, descending=True).values
        row = (density * pre.shape[0]).long().clamp(0, pre.shape[0] - 1)
        sae.b_enc.copy_(-ranked[row, torch.arange(d_sae)])
    sae.save_model(str(folder))
    return str(folder)


def setup(n_tokens: int, tmp: Path):
    model_name, hook, sae_path = demo_sources()
    model = load_model(model_name, device="cpu")
    dataset = load_dataset("builtin", model, context_size=128, n_tokens=n_tokens)
    tokens = dataset.tokens
    if tokens.numel() < n_tokens:  # the builtin corpus is finite: repeat it rather than measure less
        tokens = tokens.repeat(-(-n_tokens // tokens.numel()), 1)[: -(-n_tokens // 128)]
    note = ""
    if sae_path is None:
        sae_path = calibrated_random_sae(model, hook, tokens[:16], tmp / "sae")
        note = "demo SAE not found: random 6144-feature SAE calibrated to ~1 % density"
    sae = load_sae(path=sae_path, device="cpu")
    return model, sae, tokens, note


def bare_pass(model, sae, tokens: torch.Tensor, batch_size: int) -> float:
    """Fraction of non-zero activations (so the work cannot be optimized away)."""
    nonzero = 0
    with torch.inference_mode():
        for start in range(0, tokens.shape[0], batch_size):
            acts = sae.encode(model.forward_to_hook(tokens[start : start + batch_size], sae.hook_name))
            nonzero += int(torch.count_nonzero(acts))
    return nonzero / (tokens.numel() * sae.d_sae)


def activation_stage(model, sae, tokens: torch.Tensor, config: ActivationConfig, n_shards: int):
    n_seq = tokens.shape[0]
    bounds = [n_seq * i // n_shards for i in range(n_shards + 1)]
    summaries = [
        cache_shard(model, [sae], tokens[a:b], seq_offset=a, config=config)[0] for a, b in zip(bounds, bounds[1:])
    ]
    merged = merge_summaries(summaries)
    drafts = select_examples(merged, config)
    return merged, drafts


def timed(fn):
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def rss_child(n_tokens: int, n_shards: int) -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model, sae, tokens, _ = setup(n_tokens, Path(tmp))
        activation_stage(model, sae, tokens, ActivationConfig(), n_shards)
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


def peak_rss_mb(n_tokens: int, n_shards: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n_tokens), "--shards", str(n_shards)],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(out.strip().splitlines()[-1].split("=")[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-tokens", type=int, default=204_800)
    parser.add_argument("--shards", type=int, default=2, help="shards cached separately, then merged")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.shards)
        return

    torch.set_num_threads(args.threads)
    config = ActivationConfig()
    with tempfile.TemporaryDirectory() as tmp:
        model, sae, tokens, note = setup(args.n_tokens, Path(tmp))
        if note:
            print(f"note: {note}")
        print(f"tokens={tokens.numel()} batch={config.batch_size}x{tokens.shape[1]} d_sae={sae.d_sae} hook={sae.hook_name} threads={args.threads}")
        bare_pass(model, sae, tokens[: config.batch_size], config.batch_size)  # warm up
        bare, stage = [], []
        for _ in range(args.repeats):
            wall, cpu, density = timed(lambda: bare_pass(model, sae, tokens, config.batch_size))
            bare.append((wall, cpu))
            wall, cpu, (merged, drafts) = timed(lambda: activation_stage(model, sae, tokens, config, args.shards))
            stage.append((wall, cpu))
            print(f"  bare {bare[-1][0]:.1f}s wall {bare[-1][1]:.1f}s cpu | stage {wall:.1f}s wall {cpu:.1f}s cpu")
        n_windows = sum(len(d.examples) for d in drafts)
        live = int((merged.n_firing > 0).sum())
        print(f"density={density:.4f} live_features={live} windows={n_windows} summary_bytes={len(merged.to_bytes())}")
        best_bare, best_stage = min(b[0] for b in bare), min(s[0] for s in stage)
        cpu_ratio = min(b[1] for b in bare) / min(s[1] for s in stage)
        print(f"bare_tokens_per_s={tokens.numel() / best_bare:.0f} stage_tokens_per_s={tokens.numel() / best_stage:.0f}")
        print(f"activation_stage_ratio={best_bare / best_stage:.3f} (cpu-time ratio {cpu_ratio:.3f})")
    if not args.skip_rss:
        low = peak_rss_mb(args.n_tokens, args.shards)
        high = peak_rss_mb(2 * args.n_tokens, args.shards)
        print(f"peak_rss_mb_N={low:.0f} peak_rss_mb_2N={high:.0f}")


if __name__ == "__main__":
    main()
