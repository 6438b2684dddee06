"""Activation stage vs bare forward + encode, and peak memory at N and 2N tokens.

    .venv/bin/python bench/activation_pass.py [--n-tokens 204800] [--shards 2] [--repeats 2]

Prints `activation_stage_ratio=<x>`: tokens/s of the whole activation stage (cache_shard over the
shards + merge_summaries + select_examples; SQL excluded) divided by tokens/s of a bare
`forward_to_hook` + `encode` over the same batches. The two are interleaved batch by batch (the bare
batch runs from cache_shard's progress callback, and its time is taken out of the stage's), so both
see the same load on a shared machine; the median over `--repeats` runs is printed, wall clock, with
the process-CPU-time ratio beside it.
Then `peak_rss_mb_N=... peak_rss_mb_2N=...`: ru_maxrss of a fresh subprocess running the stage on N
and on 2N tokens; it should stay flat (the summaries are O(features), not O(tokens)). Beside it, the
stage's own peak: the peak is reset (Linux /proc/self/clear_refs) after the model, SAE and tokens load.

Uses the demo model and SAE (labeler.demo). `--random-d-sae 6144` (or where the demo SAE is missing)
uses instead a random SAE whose encoder biases are set so each feature fires on a log-uniform
0.01-4 % of tokens (~1 % on average, like a trained SAE): the DESIGN.md section 4 reference shape.
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


def setup(n_tokens: int, tmp: Path, random_d_sae: int | None = None):
    model_name, hook, sae_path = demo_sources()
    if random_d_sae:
        sae_path = None
    model = load_model(model_name, device="cpu")
    dataset = load_dataset("builtin", model, context_size=128, n_tokens=n_tokens)
    tokens = dataset.tokens
    if tokens.numel() < n_tokens:  # the builtin corpus is finite: repeat it rather than measure less
        tokens = tokens.repeat(-(-n_tokens // tokens.numel()), 1)[: -(-n_tokens // 128)]
    note = ""
    if sae_path is None:
        d_sae = random_d_sae or FALLBACK_D_SAE
        sae_path = calibrated_random_sae(model, hook, tokens[:16], tmp / "sae", d_sae)
        note = f"random {d_sae}-feature SAE calibrated to ~1 % density" + ("" if random_d_sae else " (demo SAE not found)")
    sae = load_sae(path=sae_path, device="cpu")
    return model, sae, tokens, note


def bare_batch(model, sae, batch: torch.Tensor) -> int:
    """forward_to_hook + encode of one batch; returns its non-zero count (so nothing is optimized away)."""
    with torch.inference_mode():
        return int(torch.count_nonzero(sae.encode(model.forward_to_hook(batch, sae.hook_name))))


class Clock:
    """Wall and process-CPU seconds, accumulated over intervals."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def measure(self, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        return out


def interleaved_run(model, sae, tokens: torch.Tensor, config: ActivationConfig, n_shards: int):
    """The activation stage, with the bare forward + encode of each batch run right after the stage's own
    batch (from the progress callback), so both see the same machine load, batch by batch.

    Returns (bare clock, stage clock, merged summary, drafts, non-zero fraction).
    """
    gc.collect()
    bare, stage = Clock(), Clock()
    n_seq = tokens.shape[0]
    bounds = [n_seq * i // n_shards for i in range(n_shards + 1)]
    nonzero = [0]
    summaries = []
    for a, b in zip(bounds, bounds[1:]):
        shard = tokens[a:b]
        done_rows = [0]

        def after_batch(done: int, total: int) -> None:
            rows = shard[done_rows[0] : done // shard.shape[1]]
            done_rows[0] = done // shard.shape[1]
            nonzero[0] += bare.measure(lambda: bare_batch(model, sae, rows))

        wall, cpu = bare.wall, bare.cpu
        summaries.append(stage.measure(lambda: cache_shard(model, [sae], shard, seq_offset=a, config=config, progress=after_batch)[0]))
        stage.wall -= bare.wall - wall  # the bare batches ran inside the stage's clock
        stage.cpu -= bare.cpu - cpu
    merged = stage.measure(lambda: merge_summaries(summaries))
    drafts = stage.measure(lambda: select_examples(merged, config))
    return bare, stage, merged, drafts, nonzero[0] / (tokens.numel() * sae.d_sae)


def activation_stage(model, sae, tokens: torch.Tensor, config: ActivationConfig, n_shards: int):
    n_seq = tokens.shape[0]
    bounds = [n_seq * i // n_shards for i in range(n_shards + 1)]
    summaries = [
        cache_shard(model, [sae], tokens[a:b], seq_offset=a, config=config)[0] for a, b in zip(bounds, bounds[1:])
    ]
    merged = merge_summaries(summaries)
    return merged, select_examples(merged, config)


def reset_peak_rss() -> bool:
    """Linux: forget the peak so far (loading the model and tokenizing), so the next peak is the stage's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_child(n_tokens: int, n_shards: int, random_d_sae: int | None) -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model, sae, tokens, _ = setup(n_tokens, Path(tmp), random_d_sae)
        setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        reset = reset_peak_rss()
        activation_stage(model, sae, tokens, ActivationConfig(), n_shards)
        stage_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if reset else float("nan")
    print(f"setup_peak_mb={setup_peak:.1f} stage_peak_mb={stage_peak:.1f} peak_rss_mb={max(setup_peak, stage_peak):.1f}")


def peak_rss_mb(n_tokens: int, n_shards: int, random_d_sae: int | None) -> dict[str, float]:
    extra = ["--random-d-sae", str(random_d_sae)] if random_d_sae else []
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n_tokens), "--shards", str(n_shards), *extra],
        check=True, capture_output=True, text=True,
    ).stdout
    return {k: float(v) for k, v in (pair.split("=") for pair in out.strip().splitlines()[-1].split())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-tokens", type=int, default=204_800)
    parser.add_argument("--shards", type=int, default=2, help="shards cached separately, then merged")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--random-d-sae", type=int, help="use a calibrated random SAE of this width instead of the demo SAE")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.shards, args.random_d_sae)
        return

    torch.set_num_threads(args.threads)
    config = ActivationConfig()
    with tempfile.TemporaryDirectory() as tmp:
        model, sae, tokens, note = setup(args.n_tokens, Path(tmp), args.random_d_sae)
        if note:
            print(f"note: {note}")
        print(f"tokens={tokens.numel()} batch={config.batch_size}x{tokens.shape[1]} d_sae={sae.d_sae} hook={sae.hook_name} threads={args.threads}")
        bare_batch(model, sae, tokens[: config.batch_size])  # warm up
        ratios, cpu_ratios = [], []
        for _ in range(args.repeats):
            bare, stage, merged, drafts, density = interleaved_run(model, sae, tokens, config, args.shards)
            ratios.append(bare.wall / stage.wall)
            cpu_ratios.append(bare.cpu / stage.cpu)
            print(f"  bare {bare.wall:.1f}s wall {bare.cpu:.1f}s cpu | stage {stage.wall:.1f}s wall {stage.cpu:.1f}s cpu"
                  f" | ratio {ratios[-1]:.3f} (cpu {cpu_ratios[-1]:.3f})")
        n_windows = sum(len(d.examples) for d in drafts)
        live = int((merged.n_firing > 0).sum())
        print(f"density={density:.4f} live_features={live} windows={n_windows} summary_bytes={len(merged.to_bytes())}")
        print(f"bare_tokens_per_s={tokens.numel() / bare.wall:.0f} stage_tokens_per_s={tokens.numel() / stage.wall:.0f} (last run)")
        print(f"activation_stage_ratio={float(np.median(ratios)):.3f} (median of {len(ratios)}; cpu-time ratio {float(np.median(cpu_ratios)):.3f})")
    if not args.skip_rss:
        low = peak_rss_mb(args.n_tokens, args.shards, args.random_d_sae)
        high = peak_rss_mb(2 * args.n_tokens, args.shards, args.random_d_sae)
        print(f"peak_rss_mb_N={low['peak_rss_mb']:.0f} peak_rss_mb_2N={high['peak_rss_mb']:.0f}"
              f" (the stage alone, peak reset after loading: {low['stage_peak_mb']:.0f} and {high['stage_peak_mb']:.0f})")


if __name__ == "__main__":
    main()
