"""Print the top contexts of random live features of an SAE: a quick human check of feature quality.

    python -m labeler.demo.inspect_features [--sae DIR] [--n-tokens 100000] [--n-features 20]

Brute force on purpose (every token encoded, a running top-k over all features), so it is a check
that does not depend on the activation engine it may be used to judge.
"""

from __future__ import annotations

import argparse

import torch

from labeler.demo import DEMO_DATASET, DEMO_MODEL, DEMO_SAE_PATH
from labeler.sources import load_dataset, load_model, load_sae


def top_activations(model, sae, tokens: torch.Tensor, hook: str, k: int, batch_size: int = 32):
    """Exact top-k (value, flat position) per feature over all non-special tokens, and firing counts."""
    special = torch.tensor(sorted(model.special_token_ids()))
    best_values = torch.full((k, sae.d_sae), -1.0)
    best_positions = torch.zeros((k, sae.d_sae), dtype=torch.long)
    n_firing = torch.zeros(sae.d_sae, dtype=torch.long)
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start:start + batch_size]
        acts = sae.encode(model.forward_to_hook(batch, hook)).flatten(0, 1)
        acts[torch.isin(batch.flatten(), special)] = 0
        n_firing += (acts > 0).sum(0)
        positions = torch.arange(acts.shape[0]) + start * tokens.shape[1]
        values = torch.cat([best_values, acts])
        index = torch.cat([best_positions, positions[:, None].expand_as(acts)])
        best_values, order = values.topk(k, dim=0)
        best_positions = index.gather(0, order)
    return best_values, best_positions, n_firing


def show_context(model, tokens: torch.Tensor, position: int, before: int = 12, after: int = 4) -> str:
    seq, pos = divmod(position, tokens.shape[1])
    row = tokens[seq].tolist()
    vocab = model.tokenizer.convert_ids_to_tokens
    left = " ".join(vocab(row[max(0, pos - before):pos]))
    right = " ".join(vocab(row[pos + 1:pos + 1 + after]))
    return f"{left} [[{vocab(row[pos])}]] {right}".replace(" ##", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sae", default=str(DEMO_SAE_PATH))
    parser.add_argument("--n-tokens", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--n-examples", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    model = load_model(DEMO_MODEL, device="cpu")
    sae = load_sae(path=args.sae, device="cpu")
    data = load_dataset(DEMO_DATASET, model, n_tokens=args.n_tokens)
    values, positions, n_firing = top_activations(model, sae, data.tokens, sae.hook_name, args.n_examples)
    live = torch.nonzero(n_firing > 0).flatten()
    print(f"{sae.name}: {len(live)}/{sae.d_sae} features fire on {data.n_tokens:,} tokens")
    chosen = live[torch.randperm(len(live), generator=torch.Generator().manual_seed(args.seed))[:args.n_features]]
    for feature in chosen.tolist():
        density = n_firing[feature].item() / data.n_tokens
        print(f"\nfeature {feature}  density {density:.2%}  max {values[0, feature]:.2f}")
        for rank in range(args.n_examples):
            if values[rank, feature] > 0:
                context = show_context(model, data.tokens, positions[rank, feature].item())
                print(f"  {values[rank, feature]:6.2f}  {context}")


if __name__ == "__main__":
    main()
