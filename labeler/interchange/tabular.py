"""Plain label files: JSONL (one label with all its scores per line; reads back) and CSV (one row per label).

JSONL line:
    {"sae": "...", "model_name": "...", "hook_name": "...", "feature_index": 12, "label_id": 345,
     "text": "...", "source": "llm", "method": "default", "model": "gpt-4o-mini", "status": "accepted",
     "is_current": true, "prompt_tokens": 900, "completion_tokens": 14, "cost_usd": 0.0002, "prompt_hash": "...",
     "scores": [{"method": "detection", "scorer_model": "gpt-4o-mini", "value": 0.81, "n_examples": 40,
                 "details": {...}}]}
CSV columns: the same label fields, then one column per score method (the best value over scorer models)
and `scores_json` with every score.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from labeler.errors import ConfigError
from labeler.store.queries import SCORE_METHODS, LabelRecord, ScoreRecord

LABEL_FIELDS = (
    "sae", "model_name", "hook_name", "feature_index", "label_id", "text", "source", "method", "model", "status",
    "is_current", "prompt_tokens", "completion_tokens", "cost_usd", "prompt_hash",
)  # fmt: skip
REQUIRED_FIELDS = ("feature_index", "text", "source", "method")


def record_to_dict(record: LabelRecord) -> dict[str, Any]:
    out = {name: getattr(record, name) for name in LABEL_FIELDS}
    out["scores"] = [
        {"method": s.method, "scorer_model": s.scorer_model, "value": s.value, "n_examples": s.n_examples,
         "details": s.details}
        for s in record.scores
    ]
    return out


def write_jsonl(records: Iterable[LabelRecord], out: IO[str]) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record_to_dict(record), ensure_ascii=False, allow_nan=False) + "\n")
        n += 1
    return n


def best_by_method(record: LabelRecord) -> dict[str, float | None]:
    best: dict[str, float | None] = {}
    for s in record.scores:
        if s.value is not None and (best.get(s.method) is None or s.value > best[s.method]):
            best[s.method] = s.value
        else:
            best.setdefault(s.method, None)
    return best


def write_csv(records: Iterable[LabelRecord], out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow([*LABEL_FIELDS, *SCORE_METHODS, "scores_json"])
    n = 0
    for record in records:
        best = best_by_method(record)
        scores = record_to_dict(record)["scores"]
        writer.writerow([
            *(getattr(record, name) for name in LABEL_FIELDS),
            *("" if best.get(m) is None else best[m] for m in SCORE_METHODS),
            json.dumps(scores, ensure_ascii=False) if scores else "",
        ])
        n += 1
    return n


def _record_from(obj: Any, where: str) -> LabelRecord:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a JSON object per line, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}; is this a `labeler export --format jsonl` file?")
    try:
        scores = tuple(
            ScoreRecord(str(s["method"]), str(s.get("scorer_model", "")), s.get("value"), int(s.get("n_examples", 0)),
                        s.get("details"))
            for s in obj.get("scores", [])
        )
        return LabelRecord(
            sae=str(obj.get("sae", "")),
            model_name=str(obj.get("model_name", "")),
            hook_name=str(obj.get("hook_name", "")),
            feature_index=int(obj["feature_index"]),
            text=str(obj["text"]),
            source=str(obj["source"]),
            method=str(obj["method"]),
            model=str(obj.get("model", "")),
            status=str(obj.get("status", "candidate")),
            is_current=bool(obj.get("is_current", False)),
            scores=scores,
            prompt_tokens=int(obj.get("prompt_tokens", 0)),
            completion_tokens=int(obj.get("completion_tokens", 0)),
            cost_usd=float(obj.get("cost_usd", 0.0)),
            prompt_hash=obj.get("prompt_hash"),
            label_id=obj.get("label_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc!r} in a label or score field") from exc


def read_jsonl(path: Path) -> Iterator[LabelRecord]:
    """Records of a `labeler export --format jsonl` file, with the line number in every error."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{line_no}: not JSON ({exc.msg})") from exc
            yield _record_from(obj, f"{path}:{line_no}")
