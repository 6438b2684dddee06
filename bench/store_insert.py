"""Write throughput of labeler.store on SQLite and PostgreSQL: 100k example windows and 100k scores.

For each dialect: a fresh migrated database, 5,000 features, then
  - features.replace_examples with 20 windows of 64 tokens per feature (100k rows), run twice: the second
    run is the re-delivered-task path (delete and re-insert the same windows);
  - labels.upsert_scores with 100k scores, run twice: the second run takes the ON CONFLICT DO UPDATE path.
Each line prints rows/s and the ratio to the driver's own fastest bulk path for the same rows
(sqlite3 executemany of a plain INSERT; PostgreSQL COPY), so the store's overhead reads directly.

    .venv/bin/python bench/store_insert.py [--rows 100000] [--dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeler.store.db import make_engine, upgrade  # noqa: E402
from labeler.store.features import example_row, replace_examples, upsert_features  # noqa: E402
from labeler.store.labels import upsert_labels, upsert_scores  # noqa: E402
from labeler.store.models import Example, Score  # noqa: E402
from labeler.store.sources import upsert_dataset, upsert_sae  # noqa: E402
from labeler.types import FeatureStats, LabelCandidate, ScoreResult, Window  # noqa: E402

WINDOWS_PER_FEATURE = 20
WINDOW_TOKENS = 64
SCORE_METHODS = ("detection", "fuzzing", "embedding", "simulation")


def make_windows(rng: np.random.Generator, n_features: int) -> list[list[Window]]:
    out = []
    for _ in range(n_features):
        windows = []
        for rank in range(WINDOWS_PER_FEATURE):
            acts = rng.integers(0, 256, WINDOW_TOKENS).astype(np.uint8)
            windows.append(Window(kind="top", quantile=0, rank=rank, seq_index=int(rng.integers(0, 10_000)),
                                  window_start=0, token_ids=rng.integers(0, 50_000, WINDOW_TOKENS, dtype=np.int32),
                                  activations_q=acts, scale=0.02, max_position=int(acts.argmax()),
                                  max_activation=float(acts.max()) * 0.02))
        out.append(windows)
    return out


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def raw_baseline_s(url: str, table: str, rows: list[dict]) -> float:
    """The driver's own bulk path for the same rows into an empty table, outside SQLAlchemy."""
    columns = list(rows[0])
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            conn.execute(f"DELETE FROM {table}")
            conn.commit()
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            values = [tuple(r[c] for c in columns) for r in rows]
            start = time.perf_counter()
            conn.executemany(sql, values)
            conn.commit()
            return time.perf_counter() - start
        finally:
            conn.close()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute(f"DELETE FROM {table}")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(tuple(r[c] for c in columns))
        conn.commit()
        return time.perf_counter() - start


def bench_dialect(name: str, url: str, n_rows: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    rng = np.random.default_rng(0)
    n_features = n_rows // WINDOWS_PER_FEATURE
    try:
        with sessionmaker(bind=engine)() as session:
            session: Session
            sae_id = upsert_sae(session, name="bench", source="local", model_name="m", hook_name="h", d_in=8,
                                d_sae=n_features, architecture="standard", checksum="0" * 64)
            dataset_id = upsert_dataset(session, name="d", source="s", tokenizer="t", context_size=128,
                                        n_sequences=10_000, n_tokens=1_280_000, content_hash="0" * 64)
            feature_ids = upsert_features(session, sae_id=sae_id, dataset_id=dataset_id, stats=[
                FeatureStats(i, 1000, 10, 1.0, 5.0, (0.0, 1.0), (10,)) for i in range(n_features)])
            label_ids = upsert_labels(session, feature_ids=feature_ids, candidates=[
                LabelCandidate(i, f"label {i}", "llm", "default") for i in range(n_features)])
            session.commit()

            windows = make_windows(rng, n_features)
            by_feature = {feature_ids[i]: windows[i] for i in range(n_features)}
            n_examples = n_features * WINDOWS_PER_FEATURE

            def write_examples() -> None:
                replace_examples(session, dataset_id=dataset_id, examples_by_feature=by_feature)
                session.commit()

            first = timed(write_examples)
            again = timed(write_examples)
            rows = [example_row(fid, dataset_id, w) for fid, ws in by_feature.items() for w in ws]
            session.execute(delete(Example))
            session.commit()
            raw = raw_baseline_s(url, "examples", rows)
            print(f"{name:<10} replace_examples {n_examples:>8,} rows   first {n_examples / first:>9,.0f} rows/s "
                  f"({first:5.1f} s)   again {n_examples / again:>9,.0f} rows/s ({again:5.1f} s)   "
                  f"raw driver {n_examples / raw:>9,.0f} rows/s   store/raw {raw / first:.2f} / {raw / again:.2f}",
                  flush=True)

            per_label = max(1, n_rows // (len(label_ids) * len(SCORE_METHODS)))
            results = [(label_id, ScoreResult(method, f"judge-{k}", float(rng.random()), 20, {"auroc": 0.5}))
                       for label_id in label_ids for method in SCORE_METHODS for k in range(per_label)][:n_rows]

            def write_scores() -> None:
                upsert_scores(session, results=results)
                session.commit()

            first = timed(write_scores)
            again = timed(write_scores)
            score_rows = [{"label_id": lid, "method": r.method, "scorer_model": r.scorer_model, "value": r.value,
                           "n_examples": r.n_examples, "details": '{"auroc": 0.5}', "created_at": "2026-01-01"}
                          for lid, r in results]
            session.execute(delete(Score))
            session.commit()
            raw = raw_baseline_s(url, "scores", score_rows)
            n = len(results)
            print(f"{name:<10} upsert_scores    {n:>8,} rows   first {n / first:>9,.0f} rows/s ({first:5.1f} s)   "
                  f"again {n / again:>9,.0f} rows/s ({again:5.1f} s)   raw driver {n / raw:>9,.0f} rows/s   "
                  f"store/raw {raw / first:.2f} / {raw / again:.2f}", flush=True)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test", help="admin DSN (creates a database)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            bench_dialect("sqlite", f"sqlite:///{tmp}/bench.db", args.rows)
    if args.only in (None, "postgresql"):
        name = f"labeler_bench_insert_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
            bench_dialect("postgresql", f"{base}/{name}", args.rows)
        finally:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
