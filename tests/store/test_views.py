"""The stable views and every query of docs/sql.md, on SQLite and PostgreSQL, against one seeded database.

The seed is small and hand-made so each documented query has a known answer: a fallback label chosen by
its mean score, a rejected-only feature with no label, a dead feature, open and resolved disputes, a
review edit, a job with its cost, and example windows whose token ids need all four bytes to decode.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import psycopg
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from labeler.store.db import make_engine, upgrade
from labeler.store.features import replace_examples, upsert_features
from labeler.store.labels import upsert_labels, upsert_scores
from labeler.store.models import (
    Dispute,
    DisputeReason,
    Feature,
    Job,
    JobProgress,
    Label,
    ReviewEvent,
    User,
)
from labeler.store.queries import (
    find_feature_labels,
    parse_documented_queries,
    resolve_sae,
    run_documented_query,
    run_sql,
)
from labeler.store.sources import upsert_dataset, upsert_sae, upsert_vocab
from labeler.errors import NotFoundError
from labeler.types import FeatureStats, LabelCandidate, ScoreResult, Window

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
DOC_SAE = "gpt2-small-res-jb/blocks.8.hook_resid_pre"
OTHER_SAE = "other-release/blocks.2.hook_resid_pre"
PG_ADMIN_DSN = os.environ.get("LABELER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
# Token ids spanning all four bytes of the int32 encoding, so the views' byte decoding is checked.
BIG_TOKEN = 16_777_300  # 0x01000054
MID_TOKEN = 70_000  # 0x00011170
VOCAB = {1: " Critics", 2: " argue", 3: " that", MID_TOKEN: " effective", BIG_TOKEN: " altruism", 7: " def", 8: " main"}


def _stats(index: int, density: float) -> FeatureStats:
    n_firing = int(round(density * 100_000))
    return FeatureStats(
        feature_index=index,
        n_tokens=100_000,
        n_firing=n_firing,
        max_activation=2.0 if n_firing else 0.0,
        sum_activation=float(n_firing),
        histogram_edges=(0.0, 1.0, 2.0),
        histogram_counts=(n_firing, 0),
    )


def _window(rank: int, tokens: list[int], acts: list[int], window_start: int) -> Window:
    acts_q = np.array(acts, dtype=np.uint8)
    return Window(
        kind="top",
        quantile=0,
        rank=rank,
        seq_index=rank,
        window_start=window_start,
        token_ids=np.array(tokens, dtype=np.int32),
        activations_q=acts_q,
        scale=0.01,
        max_position=window_start + int(acts_q.argmax()),
        max_activation=float(acts_q.max()) * 0.01,
    )


def _score(value: float | None, method: str = "detection", model: str = "judge") -> ScoreResult:
    return ScoreResult(method=method, scorer_model=model, value=value, n_examples=20)


def seed(session: Session) -> dict[str, int]:
    """Two SAEs and the rows every documented query looks at; returns a few ids the tests need."""
    common = dict(source="pretrained", model_name="gpt2-small", d_in=768, d_sae=24576, architecture="standard")
    sae1 = upsert_sae(session, name=DOC_SAE, release="gpt2-small-res-jb", sae_id="blocks.8.hook_resid_pre",
                      hook_name="blocks.8.hook_resid_pre", checksum="a" * 64, **common)
    sae2 = upsert_sae(session, name=OTHER_SAE, release="other-release", sae_id="blocks.2.hook_resid_pre",
                      hook_name="blocks.2.hook_resid_pre", checksum="b" * 64, **common)
    dataset = upsert_dataset(session, name="tiny", source="test", tokenizer="tok", context_size=16,
                             n_sequences=4, n_tokens=64, content_hash="c" * 64)
    upsert_vocab(session, tokenizer="tok", vocab=VOCAB)
    job = Job(submission_id=str(uuid.uuid4()), sae_id=sae1, dataset_id=dataset, config={}, status="done",
              prompt_tokens=1000, completion_tokens=100, cost_usd=2.5)
    session.add(job)
    session.flush()
    session.add(JobProgress(job_id=job.id, stage="explaining", done=10, total=12))

    densities = {0: 0.02, 1: 0.03, 2: 0.05, 3: 0.001, 4: 0.0005, 9: 0.0, 123: 0.004}
    f1 = upsert_features(session, sae_id=sae1, dataset_id=dataset, job_id=job.id,
                         stats=[_stats(i, d) for i, d in densities.items()])
    f2 = upsert_features(session, sae_id=sae2, dataset_id=dataset, stats=[_stats(0, 0.2)])

    def labels(feature_ids: dict[int, int], index: int, *texts: str, source: str = "llm") -> list[int]:
        return upsert_labels(session, feature_ids=feature_ids, job_id=job.id, candidates=[
            LabelCandidate(feature_index=index, text=t, source=source, method="default", model="gpt-4o-mini")
            for t in texts
        ])

    # f0: current label (accepted) beats a better-scored candidate
    cur0, alt0 = labels(f1, 0, "Criticism of effective altruism", "EA forum posts")
    upsert_scores(session, results=[(cur0, _score(0.9)), (cur0, _score(0.7, "embedding", "")),
                                    (alt0, _score(0.99)), (cur0, _score(0.6, "detection", "weaker-judge"))])
    # f1: no current label: the candidate with the higher mean score is chosen
    crit1, neg1 = labels(f1, 1, "criticism in product reviews", "negative sentiment")
    upsert_scores(session, results=[(crit1, _score(0.7)), (crit1, _score(0.7, "embedding", "")),
                                    (neg1, _score(0.5)), (neg1, _score(1.0, "embedding", ""))])
    # f2: the only usable candidate is unscored; the rejected one scored higher but is never chosen
    pol2, rej2 = labels(f1, 2, "Political criticism", "rejected idea")
    upsert_scores(session, results=[(rej2, _score(0.99))])
    # f3: only a rejected label -> no label
    (rej3,) = labels(f1, 3, "bad label about criticism")
    # f4: offline label, current
    (off4,) = labels(f1, 4, "tokens: def, main", source="offline")
    upsert_scores(session, results=[(off4, _score(0.4, "embedding", ""))])
    # f123: current label with two scores
    (py123,) = labels(f1, 123, "Python function definitions")
    upsert_scores(session, results=[(py123, _score(0.8)), (py123, _score(0.55, "fuzzing"))])
    # SAE 2, f0: the best detection score overall
    (crit_other,) = labels(f2, 0, "Criticism of Criticism of EA")
    upsert_scores(session, results=[(crit_other, _score(0.95))])

    session.execute(update(Label).where(Label.id.in_([rej2, rej3])).values(status="rejected"))
    session.execute(update(Label).where(Label.id.in_([cur0, py123, crit_other])).values(status="accepted"))
    for feature_id, label_id in ((f1[0], cur0), (f1[4], off4), (f1[123], py123), (f2[0], crit_other)):
        session.execute(update(Feature).where(Feature.id == feature_id).values(current_label_id=label_id))
    session.execute(update(Feature).where(Feature.id == f1[9]).values(is_dead=True))

    replace_examples(session, dataset_id=dataset, examples_by_feature={
        f1[0]: [_window(0, [1, 2, 3, MID_TOKEN, BIG_TOKEN], [10, 0, 0, 200, 255], 40),
                _window(1, [3, 3], [5, 9], 3)],
        f1[123]: [_window(0, [7, 8], [255, 17], 5), _window(1, [8, 7], [3, 4], 0)],
    })

    disputes = {f1[1]: ("open", 0.9, ("low_score", "candidates_disagree")),
                f1[2]: ("open", 0.5, ("label_collision",)),
                f1[3]: ("resolved", 0.7, ("low_score",))}
    for feature_id, (status, priority, reasons) in disputes.items():
        dispute = Dispute(feature_id=feature_id, status=status, priority=priority)
        session.add(dispute)
        session.flush()
        session.add_all(DisputeReason(dispute_id=dispute.id, reason=r) for r in reasons)
    user = User(name="ada", password_hash="x", role="reviewer")
    session.add(user)
    session.flush()
    session.add_all([
        ReviewEvent(feature_id=f1[0], user_id=user.id, user_name="ada", action="edit",
                    before={"current_label": "EA forum posts"}, after={"current_label": "Criticism of effective altruism"}),
        ReviewEvent(feature_id=f1[0], user_id=user.id, user_name="ada", action="note",
                    before={"current_label": "Criticism of effective altruism"},
                    after={"current_label": "Criticism of effective altruism"}, note="fine"),
    ])
    session.commit()
    return {"sae1": sae1, "sae2": sae2, "job": job.id, "f1_0": f1[0], "f1_123": f1[123]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(request, tmp_path_factory) -> Iterator[tuple[Session, dict[str, int]]]:
    """One migrated and seeded database per dialect, shared by the read-only tests of this module."""
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('views') / 'labeler.db'}"
    else:
        pg_name = f"labeler_test_views_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_name}"')
        url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{pg_name}"
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        with sessionmaker(bind=engine, expire_on_commit=False)() as session:
            ids = seed(session)
            yield session, ids
    finally:
        if engine is not None:
            engine.dispose()
        if pg_name:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


DOCUMENTED = {q.key: q for q in parse_documented_queries(DOCS.read_text())}


def run(session: Session, key: str) -> list[dict]:
    return run_documented_query(session, DOCUMENTED[key]).dicts()


def test_docs_list_about_ten_queries_each_runnable_on_both_dialects():
    assert len(DOCUMENTED) >= 10
    for query in DOCUMENTED.values():
        assert query.for_dialect("sqlite").lstrip().upper().startswith(("SELECT", "WITH"))
        assert query.for_dialect("postgresql").lstrip().upper().startswith(("SELECT", "WITH"))


def test_every_documented_query_has_a_check_here():
    assert set(DOCUMENTED) == set(CHECKS), "add a check for each new query in docs/sql.md"


# ---------------------------------------------------------------- one check per documented query


def check_q1(rows, ids):
    assert [(r["sae"], r["feature_index"], r["label"]) for r in rows] == [
        (OTHER_SAE, 0, "Criticism of Criticism of EA"),
        (DOC_SAE, 0, "Criticism of effective altruism"),
        (DOC_SAE, 2, "Political criticism"),  # unscored: last
    ]
    assert rows[1]["detection"] == pytest.approx(0.9)  # best of two scorer models
    assert rows[1]["embedding"] == pytest.approx(0.7)
    assert rows[2]["detection"] is None


def check_q2(rows, ids):
    assert [(r["feature_index"], r["reasons"], r["label"]) for r in rows] == [
        (1, "candidates_disagree, low_score", "negative sentiment"),
        (2, "label_collision", "Political criticism"),
    ]


def check_q3(rows, ids):
    assert {r["reason"]: r["n_open"] for r in rows} == {"candidates_disagree": 1, "low_score": 1, "label_collision": 1}


def check_q4(rows, ids):
    assert [(r["feature_index"], r["action"], r["user_name"], r["label_before"], r["label_after"]) for r in rows] == [
        (0, "edit", "ada", "EA forum posts", "Criticism of effective altruism")
    ]


def check_q5(rows, ids):
    by_sae = {r["sae"]: r for r in rows}
    assert (by_sae[DOC_SAE]["n_features"], by_sae[DOC_SAE]["n_dead"]) == (7, 1)
    assert by_sae[DOC_SAE]["dead_share"] == pytest.approx(1 / 7)
    assert by_sae[OTHER_SAE]["dead_share"] == 0
    assert rows[0]["sae"] == DOC_SAE


def check_q6(rows, ids):
    counts = {r["word"]: r["n_uses"] for r in rows}
    # chosen labels of the SAE: f0, f1 (fallback), f2, f4, f123; f3 has none
    assert counts == {"criticism": 2, "effective": 1, "altruism": 1, "negative": 1, "sentiment": 1,
                      "political": 1, "tokens": 1, "main": 1, "python": 1, "function": 1, "definitions": 1}
    assert rows[0]["word"] == "criticism"


def check_q7(rows, ids):
    assert [(r["sae"], r["feature_index"], r["top_example"]) for r in rows] == [
        (DOC_SAE, 0, " Critics argue that effective altruism"),
    ]


def check_q8(rows, ids):
    (row,) = rows
    assert (row["job_id"], row["sae"], row["n_explained"]) == (ids["job"], DOC_SAE, 10)
    assert row["usd_per_feature"] == pytest.approx(0.25)


def check_q9(rows, ids):
    assert [(r["feature_index"], r["label"]) for r in rows] == [
        (2, "Political criticism"),  # density 0.05, unscored
        (1, "negative sentiment"),  # density 0.03, detection 0.5
    ]


def check_q10(rows, ids):
    assert [(r["label"], r["method"], r["scorer_model"], r["value"]) for r in rows] == [
        ("Python function definitions", "detection", "judge", pytest.approx(0.8)),
        ("Python function definitions", "fuzzing", "judge", pytest.approx(0.55)),
    ]
    assert all(r["is_current"] for r in rows)


def check_q11(rows, ids):
    values = [r["detection"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert rows[0]["label"] == "EA forum posts" and rows[0]["detection"] == pytest.approx(0.99)
    assert len(rows) == 8  # every detection score of every candidate, rejected ones included


def check_q12(rows, ids):
    assert [(r["position"], r["token"], bool(r["is_max"])) for r in rows] == [
        (5, " def", True),
        (6, " main", False),
    ]
    assert [r["activation"] for r in rows] == [pytest.approx(2.55), pytest.approx(0.17)]


CHECKS = {f"Q{i}": globals()[f"check_q{i}"] for i in range(1, 13)}


@pytest.mark.parametrize("key", sorted(CHECKS, key=lambda k: int(k[1:])))
def test_documented_query(seeded, key):
    session, ids = seeded
    CHECKS[key](run(session, key), ids)


# ---------------------------------------------------------------- the views themselves


def test_feature_labels_has_one_row_per_feature_with_the_documented_choice(seeded):
    session, ids = seeded
    rows = run_sql(session, "SELECT sae_id, feature_index, label, label_status, is_current, detection, "
                            "embedding, is_dead FROM feature_labels ORDER BY sae_id, feature_index").dicts()
    assert len(rows) == 8
    chosen = {(r["sae_id"], r["feature_index"]): r for r in rows}
    assert chosen[(ids["sae1"], 0)]["label"] == "Criticism of effective altruism"  # current beats a better score
    assert bool(chosen[(ids["sae1"], 0)]["is_current"])
    assert chosen[(ids["sae1"], 1)]["label"] == "negative sentiment"  # mean 0.75 beats 0.70
    assert not chosen[(ids["sae1"], 1)]["is_current"]
    assert chosen[(ids["sae1"], 2)]["label"] == "Political criticism"  # rejected never chosen
    assert chosen[(ids["sae1"], 3)]["label"] is None
    assert chosen[(ids["sae1"], 9)]["label"] is None and bool(chosen[(ids["sae1"], 9)]["is_dead"])


def test_q6_counts_the_words_of_the_labels_that_feature_labels_shows(seeded):
    """Q6 resolves labels without the view on PostgreSQL (docs/sql.md says why), so check it against the view."""
    session, ids = seeded
    labels = run_sql(session, "SELECT label FROM feature_labels WHERE sae_id = :sae "
                              "ORDER BY density DESC, feature_index LIMIT 2000", {"sae": ids["sae1"]}).rows
    words = Counter(w for (label,) in labels if label for w in re.split("[^a-z0-9]+", label.lower()) if len(w) > 3)
    top_20 = sorted(words.items(), key=lambda item: (-item[1], item[0]))[:20]
    assert [(r["word"], r["n_uses"]) for r in run(session, "Q6")] == top_20


def test_label_scores_lists_every_candidate_score(seeded):
    session, ids = seeded
    n_scores = run_sql(session, "SELECT count(*) AS n FROM scores").rows[0][0]
    rows = run_sql(session, "SELECT label, method, scorer_model, value FROM label_scores WHERE feature_index = 0 "
                            f"AND sae_id = {ids['sae1']} ORDER BY label, method, scorer_model").rows
    assert run_sql(session, "SELECT count(*) FROM label_scores").rows[0][0] == n_scores
    assert [tuple(r[:3]) for r in rows] == [
        ("Criticism of effective altruism", "detection", "judge"),
        ("Criticism of effective altruism", "detection", "weaker-judge"),
        ("Criticism of effective altruism", "embedding", ""),
        ("EA forum posts", "detection", "judge"),
    ]


def test_example_tokens_decode_every_byte_of_token_ids_and_activations(seeded):
    session, ids = seeded
    rows = run_sql(session, f"SELECT rank, position, token_id, token, activation, is_max FROM example_tokens "
                            f"WHERE feature_id = {ids['f1_0']} ORDER BY rank, position").rows
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (0, 40, 1), (0, 41, 2), (0, 42, 3), (0, 43, MID_TOKEN), (0, 44, BIG_TOKEN), (1, 3, 3), (1, 4, 3),
    ]
    assert rows[4][3] == " altruism" and bool(rows[4][5])
    assert [r[4] for r in rows[:5]] == [pytest.approx(v * 0.01) for v in (10, 0, 0, 200, 255)]


def test_disputed_features_aggregates_reasons_sorted(seeded):
    session, _ = seeded
    rows = run_sql(session, "SELECT feature_index, reasons, n_reasons, status FROM disputed_features "
                            "ORDER BY priority DESC").rows
    assert [tuple(r) for r in rows] == [
        (1, "candidates_disagree, low_score", 2, "open"),
        (3, "low_score", 1, "resolved"),
        (2, "label_collision", 1, "open"),
    ]


# ---------------------------------------------------------------- search (labeler labels)


def test_find_feature_labels_searches_case_insensitively_best_first(seeded):
    session, ids = seeded
    hits = find_feature_labels(session, query="CRITICISM")
    assert [(h.sae, h.feature_index) for h in hits] == [(OTHER_SAE, 0), (DOC_SAE, 0), (DOC_SAE, 2)]
    assert hits[1].scores["detection"] == pytest.approx(0.9) and hits[1].is_current
    only_doc = find_feature_labels(session, query="criticism", sae_id=ids["sae1"], limit=1)
    assert [(h.feature_index, h.label) for h in only_doc] == [(0, "Criticism of effective altruism")]


def test_find_feature_labels_treats_like_wildcards_literally(seeded):
    session, _ = seeded
    assert find_feature_labels(session, query="%") == []
    assert find_feature_labels(session, query="_riticism") == []


def test_find_feature_labels_without_query_lists_labelled_features(seeded):
    session, ids = seeded
    hits = find_feature_labels(session, sae_id=ids["sae1"], limit=100)
    assert {h.feature_index for h in hits} == {0, 1, 2, 4, 123}
    assert {h.feature_index for h in find_feature_labels(session, sae_id=ids["sae1"], include_unlabelled=True,
                                                           limit=100)} == {0, 1, 2, 3, 4, 9, 123}


def test_resolve_sae_by_id_or_name_and_a_helpful_error(seeded):
    session, ids = seeded
    assert resolve_sae(session, DOC_SAE) == ids["sae1"]
    assert resolve_sae(session, str(ids["sae2"])) == ids["sae2"]
    with pytest.raises(NotFoundError, match="known SAEs: .*gpt2-small-res-jb"):
        resolve_sae(session, "nope")
