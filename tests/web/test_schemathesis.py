"""Property-based fuzzing of the HTTP API from its own OpenAPI spec: no input may cause a server error.

Runs in-process (ASGI) against a seeded PostgreSQL database with an admin bearer token, a bounded number
of examples per operation: valid requests with random ids, valid requests aimed at rows that exist (so
the handlers run, not only the 404 path), and invalid requests. Left out: operations that start real
work (submitting a job runs it in-process without a broker; "try" and "relabel" run the model or the
labeller); their own tests cover them.
"""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import select

from labeler.store.models import User
from web_seed import add_job

EXAMPLES_PER_OPERATION = 20
STARTS_REAL_WORK = {("POST", "/api/jobs"), ("POST", "/api/features/{feature_id}/try"),
                    ("POST", "/api/features/{feature_id}/relabel")}


def strategy_for(operation, existing: dict[str, int]):
    modes = [operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)]
    names = re.findall(r"\{(\w+)\}", operation.path)
    if names and all(name in existing for name in names):
        modes.append(operation.as_strategy(path_parameters={n: existing[n] for n in names}))
    return st.one_of(modes)


def test_api_has_no_server_errors(app, seeded, db_session):
    job_id = add_job(db_session, seeded, submission_id="fuzz")
    db_session.commit()
    existing = {
        "feature_id": seeded.feature_ids[0],
        "sae_id": seeded.sae_id,
        "feature_index": 1,
        "job_id": job_id,
        "user_id": db_session.scalar(select(User.id).where(User.name == "rita")),
    }
    auth = {"Authorization": f"Bearer {seeded.admin_token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        key = f"{operation.method.upper()} {operation.path}"
        if (operation.method.upper(), operation.path) in STARTS_REAL_WORK:
            continue

        @given(case=strategy_for(operation, existing))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            response = case.call_and_validate(headers=auth, checks=[not_a_server_error])
            statuses.setdefault(key, set()).add(response.status_code)

        fuzz()
    assert len(statuses) >= 12, sorted(statuses)
    # the fuzzing reached the handlers, not only the validation and not-found paths
    assert 200 in statuses["GET /api/features/{feature_id}"]
    assert 200 in statuses["POST /api/features/{feature_id}/edit"]
    assert 422 in statuses["POST /api/features/{feature_id}/edit"]
    assert 200 in statuses["GET /api/jobs/{job_id}"]
