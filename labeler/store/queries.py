"""Reads over the stable SQL views: label search, label records for export, and the documented queries.

The views (`feature_labels`, `label_scores`, `disputed_features`, `example_tokens`) are created by
migration 0002 and documented in docs/sql.md; the queries in that page are parsed here so the tests and
the benchmark run exactly what the documentation shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from sqlalchemy import Integer, String, column, func, select, table, text, tuple_
from sqlalchemy.orm import Session

from labeler.errors import ConfigError, NotFoundError
from labeler.store.models import SAE, Dataset, Feature, Label, Score

SCORE_METHODS = ("detection", "fuzzing", "embedding", "simulation")
# Labels read per round trip when streaming records out: bounded memory at a million labels.
EXPORT_CHUNK_LABELS = 5000

feature_labels_view = table(
    "feature_labels",
    column("sae_id", Integer),
    column("sae", String),
    column("feature_id", Integer),
    column("feature_index", Integer),
    column("label_id", Integer),
    column("label", String),
    column("label_source", String),
    column("label_method", String),
    column("label_model", String),
    column("label_status", String),
    column("is_current"),
    *(column(m) for m in SCORE_METHODS),
    column("density"),
    column("is_dead"),
)


@dataclass(frozen=True)
class FeatureLabel:
    """One row of `feature_labels`: a feature with its chosen label (see docs/sql.md, 'Which label')."""

    sae_id: int
    sae: str
    feature_index: int
    label_id: int | None
    label: str | None
    source: str | None
    method: str | None
    model: str | None
    status: str | None
    is_current: bool
    scores: dict[str, float | None]
    density: float
    is_dead: bool


def like_pattern(query: str) -> str:
    """`%query%` with LIKE's wildcards escaped (escape character backslash), lower-cased."""
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def resolve_sae(session: Session, ref: str | int) -> int:
    """An SAE id from an id or a name; the error lists what exists."""
    ref_text = str(ref).strip()
    if ref_text.isdigit():
        found = session.scalar(select(SAE.id).where(SAE.id == int(ref_text)))
    else:
        found = session.scalar(select(SAE.id).where(SAE.name == ref_text))
    if found is not None:
        return found
    known = session.execute(select(SAE.id, SAE.name).order_by(SAE.id).limit(20)).all()
    listing = ", ".join(f"{i} ({n})" for i, n in known) or "none yet: submit a job first"
    raise NotFoundError(f"no SAE {ref_text!r} in the database; known SAEs: {listing}")


def find_feature_labels(
    session: Session,
    *,
    query: str | None = None,
    sae_id: int | None = None,
    limit: int = 50,
    include_unlabelled: bool = False,
) -> list[FeatureLabel]:
    """Features whose chosen label contains `query` (case-insensitive), best detection score first.

    Uses the portable `lower(label) LIKE` form, which the trigram index serves on PostgreSQL.
    """
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    v = feature_labels_view.c
    stmt = select(feature_labels_view)
    if query:
        stmt = stmt.where(func.lower(v.label).like(like_pattern(query), escape="\\"))
    elif not include_unlabelled:
        stmt = stmt.where(v.label.is_not(None))
    if sae_id is not None:
        stmt = stmt.where(v.sae_id == sae_id)
    stmt = stmt.order_by(v.detection.is_(None), v.detection.desc(), v.sae_id, v.feature_index).limit(limit)
    return [
        FeatureLabel(
            sae_id=r.sae_id,
            sae=r.sae,
            feature_index=r.feature_index,
            label_id=r.label_id,
            label=r.label,
            source=r.label_source,
            method=r.label_method,
            model=r.label_model,
            status=r.label_status,
            is_current=bool(r.is_current),
            scores={m: getattr(r, m) for m in SCORE_METHODS},
            density=r.density,
            is_dead=bool(r.is_dead),
        )
        for r in session.execute(stmt)
    ]


# ---------------------------------------------------------------- label records (export)


@dataclass(frozen=True)
class ScoreRecord:
    method: str
    scorer_model: str
    value: float | None
    n_examples: int
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class LabelRecord:
    """One label with every score, as exported to JSONL/CSV and read back by the JSONL importer."""

    sae: str
    model_name: str
    hook_name: str
    feature_index: int
    text: str
    source: str
    method: str
    model: str
    status: str
    is_current: bool
    scores: tuple[ScoreRecord, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    prompt_hash: str | None = None
    label_id: int | None = None  # the id in the database it came from; informational


def iter_label_records(
    session: Session,
    *,
    sae_id: int | None = None,
    feature_indices: Sequence[int] | None = None,
    chunk: int = EXPORT_CHUNK_LABELS,
) -> Iterator[LabelRecord]:
    """Every label (all statuses) with its scores, by SAE, feature index and label id, in bounded chunks.

    `feature_indices` (with `sae_id`) restricts it to those features.
    """
    if feature_indices is not None and sae_id is None:
        raise ConfigError("feature_indices needs sae_id: feature indices are per SAE")
    after: tuple[int, int, int] = (-1, -1, -1)
    while True:
        stmt = (
            select(Label, Feature.sae_id, Feature.feature_index, Feature.current_label_id, SAE)
            .join(Feature, Feature.id == Label.feature_id)
            .join(SAE, SAE.id == Feature.sae_id)
        )
        if sae_id is not None:
            stmt = stmt.where(Feature.sae_id == sae_id)
        if feature_indices is not None:
            stmt = stmt.where(Feature.feature_index.in_([int(i) for i in feature_indices]))
        stmt = stmt.where(tuple_(Feature.sae_id, Feature.feature_index, Label.id) > after)
        rows = session.execute(
            stmt.order_by(Feature.sae_id, Feature.feature_index, Label.id).limit(chunk)
        ).all()
        if not rows:
            return
        scores: dict[int, list[ScoreRecord]] = {row[0].id: [] for row in rows}
        for s in session.scalars(
            select(Score).where(Score.label_id.in_(list(scores))).order_by(Score.label_id, Score.method, Score.scorer_model)
        ):
            scores[s.label_id].append(ScoreRecord(s.method, s.scorer_model, s.value, s.n_examples, s.details))
        for label, row_sae_id, feature_index, current_label_id, sae in rows:
            yield LabelRecord(
                sae=sae.name,
                model_name=sae.model_name,
                hook_name=sae.hook_name,
                feature_index=feature_index,
                text=label.text,
                source=label.source,
                method=label.method,
                model=label.model,
                status=label.status,
                is_current=current_label_id == label.id,
                scores=tuple(scores[label.id]),
                prompt_tokens=label.prompt_tokens,
                completion_tokens=label.completion_tokens,
                cost_usd=label.cost_usd,
                prompt_hash=label.prompt_hash,
                label_id=label.id,
            )
        last_label, last_sae, last_index = rows[-1][0], rows[-1][1], rows[-1][2]
        after = (last_sae, last_index, last_label.id)


@dataclass(frozen=True)
class SAEInfo:
    """What an export needs to name an SAE; `tokenizer` decodes its examples (None: no examples cached)."""

    id: int
    name: str
    release: str | None
    sae_id: str | None
    model_name: str
    hook_name: str
    d_sae: int
    tokenizer: str | None


def sae_info(session: Session, *, sae_id: int) -> SAEInfo:
    sae = session.get(SAE, sae_id)
    if sae is None:
        raise NotFoundError(f"no SAE with id {sae_id}; `labeler labels` lists the SAEs that have labels")
    tokenizer = session.scalar(
        select(Dataset.tokenizer).join(Feature, Feature.dataset_id == Dataset.id).where(Feature.sae_id == sae_id).limit(1)
    )
    return SAEInfo(sae.id, sae.name, sae.release, sae.sae_id, sae.model_name, sae.hook_name, sae.d_sae, tokenizer)


def sae_ids_with_features(session: Session) -> list[int]:
    return list(session.scalars(select(Feature.sae_id).distinct().order_by(Feature.sae_id)))


def feature_indices_of(session: Session, *, sae_id: int) -> list[int]:
    """Every stored feature index of one SAE, ascending."""
    return list(session.scalars(select(Feature.feature_index).where(Feature.sae_id == sae_id).order_by(Feature.feature_index)))


# ---------------------------------------------------------------- documented queries (docs/sql.md)


@dataclass(frozen=True)
class DocumentedQuery:
    """One query of docs/sql.md: its key (Q1, Q2, ...), title, and SQL per dialect ('any' = portable)."""

    key: str
    title: str
    sql: dict[str, str]

    def for_dialect(self, dialect: str) -> str:
        if dialect in self.sql:
            return self.sql[dialect]
        if "any" in self.sql:
            return self.sql["any"]
        raise ConfigError(f"query {self.key} has no SQL for {dialect} (it has {', '.join(sorted(self.sql))})")


_HEADING = re.compile(r"^### (Q\d+)\s*[—-]\s*(.+?)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```sql(?:[ \t]+(\w+))?[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def parse_documented_queries(markdown: str) -> list[DocumentedQuery]:
    """Every `### Qn — title` section with its ```sql fences (```sql postgresql / ```sql sqlite per dialect)."""
    headings = list(_HEADING.finditer(markdown))
    queries = []
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(markdown)
        section = markdown[heading.end() : end]
        section = section.split("\n## ", 1)[0]  # a section ends at the next level-2 heading
        sql = {(m.group(1) or "any"): m.group(2).strip() for m in _FENCE.finditer(section)}
        if not sql:
            raise ConfigError(f"docs query {heading.group(1)} has no ```sql block")
        queries.append(DocumentedQuery(key=heading.group(1), title=heading.group(2), sql=sql))
    keys = [q.key for q in queries]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"docs queries repeat a key: {keys}")
    return queries


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def run_sql(session: Session, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
    """Run one read-only SQL statement as written (a trailing semicolon is allowed)."""
    statement = sql.strip().rstrip(";")
    result = session.execute(text(statement), params or {})
    return QueryResult(columns=tuple(result.keys()), rows=tuple(tuple(r) for r in result))


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def run_documented_query(session: Session, query: DocumentedQuery) -> QueryResult:
    return run_sql(session, query.for_dialect(dialect_of(session)))
