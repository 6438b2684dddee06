"""How windows are shown to an LLM: token strings joined into text, active tokens marked <<like this>>.

Both tokenizer families are handled: byte-level BPE (GPT-2, Llama: tokens carry their leading space,
"Ġ"/"▁" or " ") is concatenated as is; WordPiece (BERT, MiniLM: no spaces, "##" continues a word) is
joined with spaces except before "##". Newlines become a visible "\\n" so one window stays one line.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from labeler.errors import ConfigError
from labeler.types import Window

OPEN, CLOSE = "<<", ">>"
MAX_LEVEL = 10


def window_tokens(window: Window) -> tuple[str, ...]:
    if window.token_strs is None:
        raise ConfigError(
            f"window (seq {window.seq_index}, start {window.window_start}) has no token strings; "
            "load examples with tokenizer=... so they decode through the vocab table"
        )
    return window.token_strs


# one translate per window: BPE space / newline / tab marks, and newlines made visible so a window is one line
_TO_TEXT = str.maketrans({"Ġ": " ", "▁": " ", "Ċ": "\\n", "ĉ": "\t", "\n": "\\n", "\r": None})
_SEP = "\x00"


def token_pieces(tokens: Sequence[str]) -> tuple[str, ...]:
    """Each token as it reads in running text, with its own leading space where one belongs."""
    return _pieces(tuple(tokens))


@lru_cache(maxsize=1 << 15)  # a window is rendered for the explainer or scorers several times per run
def _pieces(tokens: tuple[str, ...]) -> tuple[str, ...]:
    if not tokens:
        return ()
    if not any(t[:1] in (" ", "Ġ", "▁", "Ċ") for t in tokens):  # WordPiece: spaces between words
        tokens = tuple(t[2:] if t.startswith("##") else (t if i == 0 else " " + t) for i, t in enumerate(tokens))
    pieces = _SEP.join(tokens).translate(_TO_TEXT).split(_SEP)
    if len(pieces) != len(tokens):  # a token held the separator itself
        pieces = [t.translate(_TO_TEXT) for t in tokens]
    return tuple(pieces)


def render(tokens: Sequence[str], marked: Sequence[bool] | np.ndarray | None = None) -> str:
    """Text of the tokens; runs of marked tokens are wrapped in one <<...>> span (leading space outside)."""
    pieces = token_pieces(tokens)
    if marked is None:
        return "".join(pieces).strip()
    out: list[str] = []
    in_span = False
    flags = marked.tolist() if isinstance(marked, np.ndarray) else marked  # numpy scalars are slow to test one by one
    for piece, is_marked in zip(pieces, flags):
        if is_marked and not in_span:
            core = piece.lstrip()
            out.append(piece[: len(piece) - len(core)] + OPEN + core)
            in_span = True
        elif not is_marked and in_span:
            out.append(CLOSE + piece)
            in_span = False
        else:
            out.append(piece)
    if in_span:
        out.append(CLOSE)
    return "".join(out).strip()


def render_window(window: Window, *, mark: bool = True) -> str:
    return render(window_tokens(window), window.activations_q > 0 if mark else None)


def activation_levels(window: Window, feature_max: float) -> np.ndarray:
    """Activations as integers 0-10 relative to the feature's max (OpenAI / delphi convention)."""
    acts = window.activations()
    top = feature_max if feature_max > 0 else float(acts.max(initial=0.0))
    if top <= 0:
        return np.zeros(len(acts), dtype=np.int64)
    return np.clip(np.rint(acts / top * MAX_LEVEL), 0, MAX_LEVEL).astype(np.int64)


def active_token_values(window: Window, feature_max: float) -> str:
    """'<<tok>>=7, <<tok>>=3' for the active tokens, for prompts that show activation values."""
    tokens = window_tokens(window)
    levels = activation_levels(window, feature_max)
    pieces = token_pieces(tokens)
    shown = [f"{OPEN}{pieces[i].strip()}{CLOSE}={int(levels[i])}" for i in np.flatnonzero(window.activations_q > 0)]
    return ", ".join(shown)


def numbered(lines: Sequence[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))
