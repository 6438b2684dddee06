"""stable SQL views and the indexes behind the documented queries

Views (docs/sql.md is their manual): feature_labels, disputed_features, label_scores, example_tokens.
label_scores is one portable text; feature_labels (its fallback label is a function on PostgreSQL),
disputed_features (text aggregation) and example_tokens (decoding the int32/uint8 blobs) differ per
dialect. SQLite needs 3.30 or newer (NULLS LAST).

Indexes: the plain ones are declared in labeler/store/models.py too, so the drift test sees them;
on PostgreSQL `ix_labels_text` is a pg_trgm GIN index (LIKE/ILIKE '%word%' on labels.text) and
`ix_labels_text_lower_trgm` serves the portable `lower(label) LIKE '%word%'` form.

A later revision that rebuilds a table with batch mode on SQLite must drop these views first and recreate
them afterwards: SQLite refuses to rename a table while a view names it.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SCORE_COLUMNS = ("detection", "fuzzing", "embedding", "simulation")
# Statuses a label can no longer be chosen from when a feature has no current label.
DROPPED_STATUSES = "('rejected', 'superseded')"


def _best_score(method: str) -> str:
    return (
        f"(SELECT max(sc.value) FROM scores sc WHERE sc.label_id = l.id AND sc.method = '{method}') AS {method}"
    )


# The label of a feature: its current label when one is set, else the candidate with the highest mean
# score over all its scores (unscored last, then the oldest), never a rejected or superseded one; NULL
# label columns when there is none. One flat SELECT (no UNION): PostgreSQL then merges the view into the
# outer query, so a filter on the label text starts from the trigram index and a join on feature_id
# reaches the feature by its key; `l.feature_id = f.id` in the join keeps it indexable both ways.
BEST_CANDIDATE = f"""
SELECT b.id
  FROM labels b LEFT JOIN scores v ON v.label_id = b.id
 WHERE b.feature_id = {{feature_id}} AND b.status NOT IN {DROPPED_STATUSES}
 GROUP BY b.id
 ORDER BY avg(v.value) DESC NULLS LAST, b.id
 LIMIT 1"""
# PostgreSQL: the fallback is a function with a small declared cost. Written inline, the planner charges
# the whole subquery to every joined row although COALESCE only runs it for features without a current
# label, and then prefers hashing every label over following the indexes (measured at 300k labels on a
# busy 2-core machine: 0.68 s instead of 0.06 s for "the labels of the 2000 densest features"). A SQL
# function with a FROM is never inlined, so the declared cost is the one the planner uses.
BEST_CANDIDATE_FUNCTION = f"""
CREATE FUNCTION labeler_best_candidate(p_feature_id integer) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE COST 100 AS $$
{BEST_CANDIDATE.format(feature_id="p_feature_id")}
$$"""
_FEATURE_LABELS = f"""
CREATE VIEW feature_labels AS
SELECT s.id AS sae_id, s.name AS sae, f.id AS feature_id, f.feature_index,
       l.id AS label_id, l.text AS label, l.source AS label_source, l.method AS label_method,
       l.model AS label_model, l.status AS label_status,
       COALESCE(f.current_label_id = l.id, 1 = 0) AS is_current,
       {', '.join(_best_score(m) for m in SCORE_COLUMNS)},
       f.density, f.max_activation, f.is_dead, f.is_rare, f.label_state
FROM features f
JOIN saes s ON s.id = f.sae_id
LEFT JOIN labels l
       ON l.feature_id = f.id
      AND CASE WHEN l.id = COALESCE(f.current_label_id, {{best}}) THEN 1 = 1 ELSE 1 = 0 END
"""
# The CASE keeps the planner's row estimate sane: as a plain equality next to `l.feature_id = f.id` its
# selectivity is taken as 1 / number of labels on top of the key match, and joins look empty.
FEATURE_LABELS = {
    "postgresql": _FEATURE_LABELS.format(best="labeler_best_candidate(f.id)"),
    "sqlite": _FEATURE_LABELS.format(best=f"({BEST_CANDIDATE.format(feature_id='f.id')})"),
}

LABEL_SCORES = """
CREATE VIEW label_scores AS
SELECT s.id AS sae_id, s.name AS sae, f.id AS feature_id, f.feature_index,
       l.id AS label_id, l.text AS label, l.source AS label_source, l.method AS label_method,
       l.model AS label_model, l.status AS label_status,
       COALESCE(f.current_label_id = l.id, 1 = 0) AS is_current,
       sc.method, sc.scorer_model, sc.value, sc.n_examples, sc.created_at AS scored_at
FROM scores sc
JOIN labels l ON l.id = sc.label_id
JOIN features f ON f.id = l.feature_id
JOIN saes s ON s.id = f.sae_id
"""

_DISPUTED_FEATURES = """
CREATE VIEW disputed_features AS
SELECT s.id AS sae_id, s.name AS sae, f.id AS feature_id, f.feature_index, d.id AS dispute_id,
       {reasons} AS reasons,
       (SELECT count(*) FROM dispute_reasons r WHERE r.dispute_id = d.id) AS n_reasons,
       d.priority, d.status, d.created_at, d.updated_at
FROM disputes d
JOIN features f ON f.id = d.feature_id
JOIN saes s ON s.id = f.sae_id
"""
DISPUTED_FEATURES = {
    "postgresql": _DISPUTED_FEATURES.format(
        reasons="(SELECT string_agg(r.reason, ', ' ORDER BY r.reason) FROM dispute_reasons r "
        "WHERE r.dispute_id = d.id)"
    ),
    # group_concat keeps the order of an ordered subquery in practice; SQLite < 3.44 has no ORDER BY in it.
    "sqlite": _DISPUTED_FEATURES.format(
        reasons="(SELECT group_concat(x.reason, ', ') FROM "
        "(SELECT r.reason FROM dispute_reasons r WHERE r.dispute_id = d.id ORDER BY r.reason) x)"
    ),
}


# example_tokens: one row per token of every stored example window, decoded. token_ids are int32
# little-endian and activations uint8 (value = byte * scale), see labeler/store/models.py Example.
def _pg_uint_le(blob: str, offset: str, n_bytes: int) -> str:
    return " + ".join(f"{256 ** k} * get_byte({blob}, {offset} + {k})" for k in range(n_bytes))


def _sqlite_uint_le(blob: str, offset: str, n_bytes: int) -> str:
    """SQLite has no byte access on BLOBs: read the hex digits of the bytes and weigh each nibble."""
    hex_digits = f"hex(substr({blob}, {offset} + 1, {n_bytes}))"
    terms = []
    for k in range(2 * n_bytes):
        weight = 256 ** (k // 2) * (16 if k % 2 == 0 else 1)
        terms.append(f"{weight} * (instr('0123456789ABCDEF', substr({hex_digits}, {k + 1}, 1)) - 1)")
    return " + ".join(terms)


_EXAMPLE_TOKENS_COLUMNS = """
SELECT f.sae_id, f.feature_index, e.feature_id, e.id AS example_id, e.kind, e.quantile, e.rank,
       e.dataset_id, e.seq_index, e.window_start + t.i AS position, t.token_id, v.text AS token,
       t.activation_byte * e.scale AS activation, e.window_start + t.i = e.max_position AS is_max
"""
# The longest window the SQLite view can decode; windows are 32-128 tokens in practice.
SQLITE_MAX_WINDOW_TOKENS = 4096
EXAMPLE_TOKENS = {
    "postgresql": f"""
CREATE VIEW example_tokens AS {_EXAMPLE_TOKENS_COLUMNS}
FROM examples e
JOIN features f ON f.id = e.feature_id
JOIN datasets d ON d.id = e.dataset_id
CROSS JOIN LATERAL (
    SELECT g.i, {_pg_uint_le('e.token_ids', '4 * g.i', 4)} AS token_id, get_byte(e.activations, g.i) AS activation_byte
    FROM generate_series(0, length(e.activations) - 1) AS g(i)) t
LEFT JOIN vocab v ON v.tokenizer = d.tokenizer AND v.token_id = t.token_id
""",
    "sqlite": f"""
CREATE VIEW example_tokens AS
WITH RECURSIVE positions(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM positions WHERE i < {SQLITE_MAX_WINDOW_TOKENS - 1})
{_EXAMPLE_TOKENS_COLUMNS}
FROM examples e
JOIN features f ON f.id = e.feature_id
JOIN datasets d ON d.id = e.dataset_id
JOIN (SELECT e2.id AS example_id, p.i,
             {_sqlite_uint_le('e2.token_ids', '4 * p.i', 4)} AS token_id,
             {_sqlite_uint_le('e2.activations', 'p.i', 1)} AS activation_byte
        FROM examples e2 JOIN positions p ON p.i < length(e2.activations)) t ON t.example_id = e.id
LEFT JOIN vocab v ON v.tokenizer = d.tokenizer AND v.token_id = t.token_id
""",
}

VIEWS = ("feature_labels", "label_scores", "disputed_features", "example_tokens")

# (name, table, columns): plain B-tree indexes on both dialects, mirrored in labeler/store/models.py.
PLAIN_INDEXES = (
    ("ix_scores_method_value", "scores", ["method", "value"]),
    ("ix_disputes_status_priority", "disputes", ["status", "priority"]),
    ("ix_review_events_created_at", "review_events", ["created_at"]),
    ("ix_features_sae_id_density", "features", ["sae_id", "density"]),
    ("ix_features_sae_id_is_dead", "features", ["sae_id", "is_dead"]),
    ("ix_features_current_label_id", "features", ["current_label_id"]),
    ("ix_labels_job_id", "labels", ["job_id"]),
)


def _require_pg_trgm() -> None:
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    if not available:
        raise RuntimeError(
            "PostgreSQL extension pg_trgm is not installed on this server; label search needs it. "
            "Install the server's contrib package (e.g. apt-get install postgresql-contrib) and migrate again."
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, columns in PLAIN_INDEXES:
        op.create_index(name, table, columns)
    if dialect == "postgresql":
        _require_pg_trgm()
        op.execute("CREATE INDEX ix_labels_text ON labels USING gin (text gin_trgm_ops)")
        op.execute("CREATE INDEX ix_labels_text_lower_trgm ON labels USING gin (lower(text) gin_trgm_ops)")
    else:
        op.create_index("ix_labels_text", "labels", ["text"])
    if dialect == "postgresql":
        op.execute(BEST_CANDIDATE_FUNCTION)
    op.execute(FEATURE_LABELS[dialect])
    op.execute(LABEL_SCORES)
    op.execute(DISPUTED_FEATURES[dialect])
    op.execute(EXAMPLE_TOKENS[dialect])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS labeler_best_candidate(integer)")
        op.drop_index("ix_labels_text_lower_trgm", table_name="labels")
    op.drop_index("ix_labels_text", table_name="labels")
    for name, table, _ in reversed(PLAIN_INDEXES):
        op.drop_index(name, table_name=table)
