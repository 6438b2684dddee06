"""Latency of every query in docs/sql.md on PostgreSQL with a million labels.

Creates a throwaway database, migrates it, fills it with COPY (4 SAEs x 65,536 features, 1M labels,
3 scores per label, disputes, review events, example windows), runs each documented query (one warm-up,
then the median of --repeat runs) and prints one line per query plus a summary against the 50 ms target.
The queries are parsed from docs/sql.md, so the benchmark and the documentation never diverge.

    .venv/bin/python bench/sql_queries.py [--labels 1000000] [--dsn postgresql://postgres@127.0.0.1:5432/test]
                                          [--repeat 5] [--jit default|on|off] [--explain]
                                          [--keep | --reuse DBNAME]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labeler.store.db import make_engine, upgrade  # noqa: E402
from labeler.store.queries import parse_documented_queries  # noqa: E402

TARGET_MS = 50.0
DOCS = ROOT / "docs" / "sql.md"
SAE_NAMES = tuple(f"gpt2-small-res-jb/blocks.{layer}.hook_resid_pre" for layer in (8, 2, 5, 11))
D_SAE = 65536
WINDOW_TOKENS = 64
N_VOCAB = 5000
TOPICAL_WORDS = (
    "criticism", "python", "code", "names", "numbers", "dates", "legal", "medical", "sports", "music",
    "religion", "politics", "finance", "cooking", "weather", "emotion", "negation", "plural", "quotes",
    "brackets", "questions", "german", "french", "spanish", "chemistry", "biology", "physics", "math",
    "history", "geography", "cities", "countries", "animals", "colors", "body", "family", "food",
)
# Share of labels that carry one of the topical words: each word then appears in ~0.05 % of labels
# (about 540 of 1M), the order of a specific topic among the labels of a real SAE.
TOPICAL_SHARE = 0.02
FILLER = ("tokens", "about", "mentions", "of", "in", "after", "before", "the", "words", "phrases", "contexts")


def pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    picks = rng.integers(0, len(syllables), size=(n, 3))
    return sorted({"".join(syllables[i] for i in row) for row in picks})


def tsv(rows) -> str:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row))
        buf.write("\n")
    return buf.getvalue()


def copy(cur, table: str, columns: str, rows) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
        cp.write(tsv(rows))


def fill(dsn: str, n_labels: int, seed: int = 0) -> dict[str, int]:
    """Generate and COPY the data set; returns row counts."""
    rng = np.random.default_rng(seed)
    now = "2026-01-01 00:00:00+00"
    words = pseudo_words(rng, 8000)
    zipf_weights = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    zipf_weights /= zipf_weights.sum()
    n_features = len(SAE_NAMES) * D_SAE
    counts: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        # Bulk-load speed: no per-row foreign-key triggers, secondary indexes rebuilt once at the end.
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET maintenance_work_mem = '512MB'")
        secondary = cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'ix\\_%'"
        ).fetchall()
        for index_name, _ in secondary:
            cur.execute(f'DROP INDEX "{index_name}"')
        copy(cur, "saes", "id, name, source, release, sae_id, path, model_name, hook_name, d_in, d_sae, architecture, checksum, created_at",
             [(i + 1, name, "pretrained", name.split("/")[0], name.split("/")[1], None, "gpt2-small",
               name.split("/")[1], 768, D_SAE, "standard", f"{i:064d}", now) for i, name in enumerate(SAE_NAMES)])
        copy(cur, "datasets", "id, name, source, tokenizer, context_size, n_sequences, n_tokens, content_hash, created_at",
             [(1, "bench", "synthetic", "bench-tok", 128, 100000, 12800000, "0" * 64, now)])
        copy(cur, "vocab", "tokenizer, token_id, text", [("bench-tok", i, f" {words[i % len(words)]}") for i in range(N_VOCAB)])
        copy(cur, "jobs", "id, submission_id, sae_id, dataset_id, config, status, error, prompt_tokens, completion_tokens, cost_usd, created_at, updated_at, finished_at",
             [(i + 1, str(uuid.UUID(int=i)), i + 1, 1, "{}", "done", None, 40_000_000 + i, 3_000_000, 25.0 + i, now, now, now)
              for i in range(len(SAE_NAMES))])
        copy(cur, "job_progress", "job_id, stage, done, total, updated_at",
             [(j + 1, stage, D_SAE, D_SAE, now) for j in range(len(SAE_NAMES)) for stage in ("caching", "merging", "explaining", "scoring")])

        # features: 5 % dead; log-normal densities
        sae_of = np.repeat(np.arange(1, len(SAE_NAMES) + 1), D_SAE)
        index_of = np.tile(np.arange(D_SAE), len(SAE_NAMES))
        dead = rng.random(n_features) < 0.05
        density = np.where(dead, 0.0, np.clip(rng.lognormal(-7.0, 1.6, n_features), 0, 0.5))
        live_ids = np.flatnonzero(~dead) + 1  # feature ids are 1-based
        copy(cur, "features", "id, sae_id, feature_index, dataset_id, job_id, n_tokens, n_firing, density, max_activation, mean_activation, histogram, is_dead, is_rare, label_state, label_error, current_label_id, updated_at",
             ((fid, int(sae_of[fid - 1]), int(index_of[fid - 1]), 1, int(sae_of[fid - 1]), 12800000,
               int(density[fid - 1] * 12800000), float(density[fid - 1]), 0.0 if dead[fid - 1] else 5.0, 1.0, None,
               "t" if dead[fid - 1] else "f", "f", "pending" if dead[fid - 1] else "labelled", None, None, now)
              for fid in range(1, n_features + 1)))
        counts["features"] = n_features

        # labels: spread over live features, about n_labels / live candidates each
        label_feature = np.sort(rng.choice(live_ids, size=n_labels, replace=True))
        label_feature[: len(live_ids)] = live_ids  # every live feature has at least one label
        label_feature.sort()
        n_words = rng.integers(3, 7, size=n_labels)
        word_picks = rng.choice(len(words), size=(n_labels, 7), p=zipf_weights)
        topical = rng.integers(0, len(TOPICAL_WORDS), size=n_labels)
        filler = rng.integers(0, len(FILLER), size=(n_labels, 2))
        texts = []
        for i in range(n_labels):
            parts = [words[w] for w in word_picks[i, : n_words[i]]]
            parts.insert(1, FILLER[filler[i, 0]])
            parts.insert(3, TOPICAL_WORDS[topical[i]] if rng.random() < TOPICAL_SHARE else FILLER[filler[i, 1]])
            texts.append(" ".join(parts))
        label_ids = np.arange(1, n_labels + 1)
        first_of_feature = np.r_[True, label_feature[1:] != label_feature[:-1]]
        has_current = rng.random(n_labels) < 0.9
        is_current = first_of_feature & has_current
        status = np.where(is_current, "accepted", np.where(rng.random(n_labels) < 0.2, "rejected", "candidate"))
        offline = rng.random(n_labels) < 0.2
        copy(cur, "labels", "id, feature_id, text, source, method, model, prompt_hash, status, job_id, prompt_tokens, completion_tokens, cost_usd, created_at",
             ((int(label_ids[i]), int(label_feature[i]), texts[i], "offline" if offline[i] else "llm",
               "offline-lift" if offline[i] else "default", "" if offline[i] else "gpt-4o-mini", None, status[i],
               int(sae_of[label_feature[i] - 1]), 0 if offline[i] else 900, 0 if offline[i] else 20,
               0.0 if offline[i] else 0.00015, now) for i in range(n_labels)))
        counts["labels"] = n_labels

        # scores: detection, fuzzing, embedding for every label
        values = rng.beta(5, 3, size=(n_labels, 3))
        methods = ("detection", "fuzzing", "embedding")
        copy(cur, "scores", "label_id, method, scorer_model, value, n_examples, details, created_at",
             ((int(label_ids[i]), m, "" if m == "embedding" else "gpt-4o-mini", float(values[i, k]), 40, None, now)
              for i in range(n_labels) for k, m in enumerate(methods)))
        counts["scores"] = 3 * n_labels

        # current labels
        cur.execute("CREATE TEMP TABLE chosen (feature_id int, label_id int)")
        copy(cur, "chosen", "feature_id, label_id",
             ((int(label_feature[i]), int(label_ids[i])) for i in np.flatnonzero(is_current)))
        cur.execute("UPDATE features f SET current_label_id = c.label_id FROM chosen c WHERE f.id = c.feature_id")

        # disputes: 10 % of live features, 1-3 reasons, 80 % open
        disputed = rng.choice(live_ids, size=len(live_ids) // 10, replace=False)
        reasons = ("low_score", "candidates_disagree", "scorers_disagree", "label_collision", "llm_failure", "human_flag")
        copy(cur, "disputes", "id, feature_id, status, priority, created_at, updated_at",
             ((i + 1, int(fid), "open" if rng.random() < 0.8 else "resolved", float(rng.random()), now, now)
              for i, fid in enumerate(disputed)))
        reason_rows = []
        for i in range(len(disputed)):
            for r in rng.choice(len(reasons), size=int(rng.integers(1, 4)), replace=False):
                reason_rows.append((i + 1, reasons[r], None))
        copy(cur, "dispute_reasons", "dispute_id, reason, details", reason_rows)
        counts["disputes"] = len(disputed)

        # review events: 5000 decisions on disputed features
        copy(cur, "users", "id, name, password_hash, role, api_token_hash, created_at", [(1, "ada", "x", "reviewer", None, now)])
        events = []
        for i in range(5000):
            fid = int(disputed[i])
            action = ("accept", "edit", "reject", "note")[i % 4]
            before = {"current_label_id": None, "current_label": f"old label {i}", "labels": {}, "dispute": "open"}
            after = dict(before, current_label=before["current_label"] if action == "note" else f"new label {i}",
                         dispute="resolved")
            events.append((fid, 1, "ada", action, json.dumps(before), json.dumps(after), None,
                           f"2026-01-{1 + i % 28:02d} {i % 24:02d}:00:00+00"))
        copy(cur, "review_events", "feature_id, user_id, user_name, action, before, after, note, created_at", events)

        # example windows: 5 top windows for the first 4096 features of each SAE and for features whose
        # labels mention 'criticism' (Q7 decodes those)
        criticism = {int(label_feature[i]) for i in range(n_labels) if "criticism" in texts[i]}
        with_examples = sorted(criticism | {int(f) for f in live_ids if index_of[f - 1] < 4096})
        example_rows = []
        for fid in with_examples:
            for rank in range(5):
                tokens = rng.integers(0, N_VOCAB, WINDOW_TOKENS, dtype=np.int32)
                acts = rng.integers(0, 256, WINDOW_TOKENS).astype(np.uint8)
                max_pos = int(acts.argmax())
                example_rows.append((fid, "top", 0, rank, 1, int(rng.integers(0, 100000)), 0,
                                     "\\\\x" + tokens.astype("<i4").tobytes().hex(), "\\\\x" + acts.tobytes().hex(),
                                     0.02, max_pos, float(acts[max_pos]) * 0.02))
        copy(cur, "examples", "feature_id, kind, quantile, rank, dataset_id, seq_index, window_start, token_ids, activations, scale, max_position, max_activation",
             example_rows)
        counts["examples"] = len(example_rows)
        for _, index_def in secondary:
            cur.execute(index_def)
        for table in ("saes", "datasets", "jobs", "features", "labels", "disputes", "users"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return counts


def time_queries(dsn: str, repeat: int, explain: bool, jit: str) -> list[tuple[str, str, float, int]]:
    queries = parse_documented_queries(DOCS.read_text())
    results = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        if jit != "default":
            conn.execute(f"SET jit = {jit}")
        for q in queries:
            sql = q.for_dialect("postgresql").rstrip().rstrip(";")
            n_rows = len(conn.execute(sql).fetchall())  # warm-up
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                conn.execute(sql).fetchall()
                times.append((time.perf_counter() - start) * 1000)
            median = statistics.median(times)
            results.append((q.key, q.title, median, n_rows))
            print(f"{q.key:<4} {median:8.1f} ms  {n_rows:>5} rows  {'ok  ' if median < TARGET_MS else 'SLOW'}  {q.title}",
                  flush=True)
            if explain and median >= TARGET_MS:
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()
                print("\n".join("      " + r[0] for r in plan))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test", help="admin DSN (creates a database)")
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE for queries over the target")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--jit", choices=("default", "on", "off"), default="default",
                        help="PostgreSQL JIT for the timed session (docs/sql.md recommends off)")
    parser.add_argument("--reuse", metavar="DBNAME", help="time the queries on a database kept by --keep")
    args = parser.parse_args()

    base = args.dsn.rsplit("/", 1)[0]
    name = args.reuse or f"labeler_bench_sql_{uuid.uuid4().hex[:8]}"
    dsn = f"{base}/{name}"
    if not args.reuse:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if args.reuse:
            with psycopg.connect(dsn) as conn:
                counts = {"labels": conn.execute("SELECT count(*) FROM labels").fetchone()[0]}
        else:
            url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
            upgrade(url)
            make_engine(url).dispose()
            start = time.perf_counter()
            counts = fill(dsn, args.labels)
            print(f"filled {name} in {time.perf_counter() - start:.0f} s: "
                  + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        results = time_queries(dsn, args.repeat, args.explain, args.jit)
        slow = [r for r in results if r[2] >= TARGET_MS]
        worst = max(results, key=lambda r: r[2])
        load = os.getloadavg()[0]
        print(f"summary: {len(results) - len(slow)}/{len(results)} queries under {TARGET_MS:.0f} ms at "
              f"{counts['labels']:,} labels (jit {args.jit}, load average {load:.1f} on {os.cpu_count()} cores); "
              f"median {statistics.median(r[2] for r in results):.1f} ms; "
              f"slowest {worst[0]} {worst[2]:.1f} ms (ratio to target {worst[2] / TARGET_MS:.2f})")
    finally:
        if args.keep or args.reuse:
            print(f"kept database {name}")
        else:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
