"""EleutherAI delphi explanation files, in.

delphi writes one file per feature into its explanations folder, named `<module>_latent<index>.txt` (the
`repr` of its `Latent`: module name, "_latent", index) and holding the explanation as JSON: a string
(`orjson.dumps(result.explanation)` in delphi's `__main__.py`); some forks write {"explanation": ...}.
Both are read. delphi's placeholder for an unparsable answer ("Explanation could not be parsed.") is a
failure, not a label: such files are skipped and counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from labeler.errors import ConfigError
from labeler.types import LabelCandidate

FILE_NAME = re.compile(r"^(?P<module>.+)_latent(?P<index>\d+)\.txt$")
PLACEHOLDERS = frozenset({"explanation could not be parsed.", "explanation could not be parsed"})
METHOD = "delphi"


@dataclass(frozen=True)
class DelphiExplanation:
    module: str
    feature_index: int
    text: str


def _explanation_text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8").strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc.msg}); delphi writes the explanation as a JSON string") from exc
    if isinstance(value, dict):
        value = value.get("explanation")
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a JSON string (or an object with 'explanation'), got {type(value).__name__}")
    return " ".join(value.split())


def read_explanations(path: Path) -> list[DelphiExplanation]:
    """Every `<module>_latent<index>.txt` under `path` (a folder, searched recursively, or one file)."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*_latent*.txt") if p.is_file())
    else:
        raise ConfigError(f"{path} does not exist; pass delphi's explanations folder")
    out = []
    for file in files:
        match = FILE_NAME.match(file.name)
        if match is None:
            if path.is_file():
                raise ConfigError(f"{file.name} is not named like a delphi explanation (<module>_latent<index>.txt)")
            continue
        out.append(DelphiExplanation(match["module"], int(match["index"]), _explanation_text(file)))
    if not out:
        raise ConfigError(f"no delphi explanation files (<module>_latent<index>.txt) under {path}")
    return out


def to_candidates(
    explanations: list[DelphiExplanation], *, source: str | None = None, model: str = ""
) -> tuple[list[LabelCandidate], int]:
    """Candidates of one module; returns (candidates, n skipped as empty or delphi's failure placeholder)."""
    modules = sorted({e.module for e in explanations})
    if source is not None:
        explanations = [e for e in explanations if e.module == source]
        if not explanations:
            raise ConfigError(f"no explanations of module {source!r}; the folder has: {', '.join(modules)}")
    elif len(modules) > 1:
        raise ConfigError(f"explanations of {len(modules)} modules ({', '.join(modules)}); pick one with --source")
    candidates = [
        LabelCandidate(feature_index=e.feature_index, text=e.text, source="import", method=METHOD, model=model)
        for e in explanations
        if e.text and e.text.lower() not in PLACEHOLDERS
    ]
    return candidates, len(explanations) - len(candidates)
