"""Dispute rules: each fires on a crafted case and stays quiet on a clean one; priority orders the queue."""

from __future__ import annotations

import pytest

from labeler.config import LabelConfig
from labeler.disputes import (
    CandidateInput,
    FeatureDisputeInput,
    LabelRef,
    ScoreValue,
    best_candidate,
    density_weight,
    evaluate_disputes,
    find_collisions,
    normalize_label,
    priority,
)

CONFIG = LabelConfig()  # min_score 0.6, min_candidate_similarity 0.5, max_scorer_spread 0.35, collision 0.95


def scores(**values: float | None) -> tuple[ScoreValue, ...]:
    return tuple(ScoreValue(method, "m", value) for method, value in values.items())


def feature(index: int, *candidates: CandidateInput, density: float = 1e-3, **kw) -> FeatureDisputeInput:
    return FeatureDisputeInput(feature_index=index, density=density, candidates=candidates, **kw)


def clean(index: int, text: str) -> FeatureDisputeInput:
    return feature(index, CandidateInput(text, label_id=100 + index, scores=scores(detection=0.9, embedding=0.85)))


def reasons_of(decision) -> dict:
    return dict(decision.reasons)


def test_clean_features_have_no_reasons():
    features = [clean(0, "python function definitions"), clean(1, "French cooking recipes")]
    decisions = evaluate_disputes(features, CONFIG)
    assert [d.feature_index for d in decisions] == [0, 1]
    assert all(d.reasons == () and d.priority == 0.0 for d in decisions)
    assert decisions[0].best_label_id == 100


def test_low_score_fires_below_min_score_on_any_scorer():
    f = feature(0, CandidateInput("python def", label_id=1, scores=scores(detection=0.55, embedding=0.7)))
    (decision,) = evaluate_disputes([f], CONFIG)
    low = reasons_of(decision)["low_score"]
    assert low["label_id"] == 1 and low["min_score"] == 0.6
    assert low["scores"] == [{"method": "detection", "scorer_model": "m", "value": 0.55}]
    assert set(reasons_of(decision)) == {"low_score"}


def test_skipped_scores_are_not_low():
    f = feature(0, CandidateInput("python def", label_id=1, scores=scores(detection=0.9, simulation=None)))
    assert evaluate_disputes([f], CONFIG)[0].reasons == ()


def test_candidates_disagree_on_unrelated_candidates_only():
    agree = feature(0, CandidateInput("python function definitions", 1), CandidateInput("function definitions in python code", 2))
    disagree = feature(1, CandidateInput("python function definitions", 3), CandidateInput("recipes for chocolate cake", 4))
    d_agree, d_disagree = evaluate_disputes([agree, disagree], CONFIG)
    assert "candidates_disagree" not in reasons_of(d_agree)
    details = reasons_of(d_disagree)["candidates_disagree"]
    assert details["min_similarity"] < 0.5 and details["n_candidates"] == 2
    assert sorted(details["pair"]) == ["python function definitions", "recipes for chocolate cake"]


def test_rejected_candidates_do_not_count():
    f = feature(0, CandidateInput("python function definitions", 1),
                CandidateInput("recipes for chocolate cake", 2, status="rejected"))
    assert evaluate_disputes([f], CONFIG)[0].reasons == ()


def test_scorers_disagree_when_the_spread_is_wide():
    wide = feature(0, CandidateInput("python def", 1, scores=scores(detection=0.98, fuzzing=0.61)))
    narrow = feature(1, CandidateInput("python class", 2, scores=scores(detection=0.9, fuzzing=0.7)))
    d_wide, d_narrow = evaluate_disputes([wide, narrow], CONFIG)
    assert reasons_of(d_wide)["scorers_disagree"]["spread"] == pytest.approx(0.37)
    assert "low_score" not in reasons_of(d_wide)
    assert d_narrow.reasons == ()


def test_label_collision_marks_both_features():
    features = [clean(0, "Criticism of EA"), clean(1, "Criticism of Criticism of EA"), clean(2, "python decorators")]
    d0, d1, d2 = evaluate_disputes(features, CONFIG)
    assert reasons_of(d0)["label_collision"]["features"][0]["feature_index"] == 1
    assert reasons_of(d1)["label_collision"]["features"][0]["feature_index"] == 0
    assert reasons_of(d0)["label_collision"]["features"][0]["similarity"] >= 0.95
    assert d2.reasons == ()


def test_identical_normalised_text_collides():
    features = [clean(0, "The token 'def'."), clean(1, "the token  'def'")]
    d0, d1 = evaluate_disputes(features, CONFIG.model_copy(update={"collision_similarity": 1.01}))
    assert reasons_of(d0)["label_collision"]["features"] == [
        {"feature_index": 1, "label": "the token  'def'", "similarity": 1.0}
    ]
    assert "label_collision" in reasons_of(d1)
    assert normalize_label(" Criticism of  EA. ") == "criticism of ea"
    assert normalize_label("the token '('") != normalize_label("the token ')'")


def test_collision_with_a_label_stored_by_an_earlier_batch():
    stored = [LabelRef(7, "Criticism of EA"), LabelRef(8, "python decorators")]
    (decision,) = evaluate_disputes([clean(0, "Criticism of Criticism of EA")], CONFIG, other_labels=stored)
    partners = reasons_of(decision)["label_collision"]["features"]
    assert [p["feature_index"] for p in partners] == [7]
    both_sides = find_collisions([LabelRef(0, "Criticism of Criticism of EA")], 0.95, against=stored)
    assert set(both_sides) == {0, 7}


def test_collision_search_is_one_vectorised_pass_over_many_labels():
    labels = [LabelRef(i, f"label number {i} about topic {i % 7}") for i in range(300)]
    labels.append(LabelRef(300, "label number 5 about topic 5"))  # same text as feature 5
    found = find_collisions(labels, 0.999)
    assert found[300][0].feature_index == 5 and found[5][0].feature_index == 300


def test_chunked_collision_search_equals_all_pairs(monkeypatch):
    """Chunks of 7 rows over 40 labels (plus 10 stored ones) find exactly the pairs a full matrix finds."""
    import itertools

    import labeler.disputes as disputes
    from labeler.embed import embed_texts

    topics = ["python functions", "French cooking", "criticism of EA", "numbers in tables", "weather reports"]
    texts = [f"{topics[i % 5]}{' and more' * (i % 3)}" for i in range(50)]
    mine = [LabelRef(i, t) for i, t in enumerate(texts[:40])]
    stored = [LabelRef(i, t) for i, t in enumerate(texts[40:], start=40)]
    vectors = embed_texts(texts)
    expected = {
        (a, b) for a, b in itertools.combinations(range(50), 2)
        if (a < 40 or b < 40) and float(vectors[a] @ vectors[b]) >= 0.9
    }
    monkeypatch.setattr(disputes, "COLLISION_ROWS_PER_CHUNK", 7)
    found = find_collisions(mine, 0.9, against=stored)
    pairs = {tuple(sorted((index, p.feature_index))) for index, partners in found.items() for p in partners}
    assert pairs == expected and len(expected) > 50


def test_failed_and_human_flag_are_carried_as_reasons():
    failed = feature(0, label_state="failed", label_error="ExplanationParseError: no label in 3 answers")
    flagged = feature(1, CandidateInput("python def", 1, scores=scores(detection=0.9)),
                      human_flag={"user_id": 4, "note": "too broad"})
    d_failed, d_flagged = evaluate_disputes([failed, flagged], CONFIG)
    assert reasons_of(d_failed) == {"failed": {"error": "ExplanationParseError: no label in 3 answers"}}
    assert reasons_of(d_flagged) == {"human_flag": {"user_id": 4, "note": "too broad"}}
    assert d_flagged.priority > 1.0 > d_failed.priority > 0.0


def test_pending_feature_without_labels_is_not_disputed():
    assert evaluate_disputes([feature(0, label_state="pending")], CONFIG)[0].reasons == ()


def test_every_rule_that_fires_is_kept():
    f = feature(
        0,
        CandidateInput("python function definitions", 1, scores=scores(detection=0.95, embedding=0.3)),
        CandidateInput("recipes for chocolate cake", 2, scores=scores(detection=0.2, embedding=0.2)),
        label_state="failed", label_error="scorer timed out",
    )
    (decision,) = evaluate_disputes([f], CONFIG)
    assert decision.reason_names == {"low_score", "candidates_disagree", "scorers_disagree", "failed"}


def test_best_candidate_rules():
    scored_low = CandidateInput("a", 1, scores=scores(detection=0.6))
    scored_high = CandidateInput("b", 2, scores=scores(detection=0.9, embedding=0.8))
    unscored = CandidateInput("c", 3)
    assert best_candidate(feature(0, unscored, scored_low, scored_high)).label_id == 2
    accepted = CandidateInput("d", 4, source="human", status="accepted")
    assert best_candidate(feature(0, scored_high, accepted)).label_id == 4
    assert best_candidate(feature(0, CandidateInput("e", 5, status="rejected"))) is None
    tie = (CandidateInput("x", 9, scores=scores(d=0.7)), CandidateInput("y", 8, scores=scores(d=0.7)))
    assert best_candidate(feature(0, *tie)).label_id == 8


def test_priority_weighs_doubt_by_density():
    low = [("low_score", {"severity": 0.2})]
    assert priority(low, 1e-2) > priority(low, 1e-5) > 0
    assert priority([("low_score", {"severity": 0.9})], 1e-3) > priority(low, 1e-3)
    assert priority(low + [("scorers_disagree", {"severity": 0.1})], 1e-3) > priority(low, 1e-3)
    assert priority([("failed", {})], 1.0) == 1.0
    assert priority([("human_flag", {})], 0.0) == 1.25
    assert priority([("failed", {}), ("human_flag", {})], 1.0) == 2.0
    assert density_weight(0.0) == 0.0 and density_weight(1.0) == 1.0
