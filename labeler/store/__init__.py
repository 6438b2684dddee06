"""The only door to SQL. Functions take a session and keyword arguments and upsert on natural keys.

One module per area: sources (SAEs, datasets, vocab, sequences), features (stats, examples),
labels (candidates, scores), and the areas other stages add beside them.
"""

from labeler.store.db import get_engine, session_scope, upgrade

__all__ = ["get_engine", "session_scope", "upgrade"]
