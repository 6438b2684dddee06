"""`labeler train-demo-sae`: rebuild the SAE shipped in labeler/demo/sae from nothing but PyPI packages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from labeler.demo.train import DemoSAETraining

console = Console()
_DEFAULTS = DemoSAETraining()


def train_demo_sae(
    out: Optional[Path] = typer.Option(None, help="Output folder. Default: the package's labeler/demo/sae."),
    n_tokens: int = typer.Option(_DEFAULTS.n_tokens, help="Corpus tokens run through MiniLM (activations kept in RAM)."),
    epochs: int = typer.Option(_DEFAULTS.epochs, help="Passes of the SAE over those activations."),
    hook: str = typer.Option(_DEFAULTS.hook_name, help="MiniLM hook to train on."),
    d_sae: int = typer.Option(_DEFAULTS.d_sae, help="Number of features."),
    k: int = typer.Option(_DEFAULTS.k, help="Active features per token (TopK)."),
    lr: float = typer.Option(_DEFAULTS.lr, help="Adam learning rate."),
    seed: int = typer.Option(_DEFAULTS.seed, help="Seed for initialisation and sequence order."),
) -> None:
    """Train the demo TopK SAE on MiniLM over the built-in corpus (CPU; ~15 minutes on 2 busy cores)."""
    from labeler.demo import DEMO_SAE_PATH
    from labeler.demo.train import train_demo_sae as train

    training = DemoSAETraining(hook_name=hook, d_sae=d_sae, k=k, n_tokens=n_tokens, epochs=epochs, lr=lr, seed=seed)
    target = out or DEMO_SAE_PATH
    console.print(f"training {d_sae} features, k={k}, at {hook} on {n_tokens:,} tokens -> {target}")
    saved = train(target, training, report=console.print)
    console.print(f"saved [bold]{saved}[/]")


def register(app: typer.Typer) -> None:
    app.command("train-demo-sae")(train_demo_sae)
