"""Rasa's SQL tracker store plus the indexes its per-message query needs.

Rasa 3.6 loads a conversation with "events of this sender since the latest
`session_started`", which filters on (sender_id, type_name) and then on
(sender_id, timestamp).  The stock table only indexes sender_id, so a
customer's cost grows with every event ever stored for them.  These two
composite indexes make both parts index range scans, keeping latency flat for
customers who have talked to us for months (see BENCHMARKS.md).
"""
from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore

logger = logging.getLogger(__name__)

_INDEXES = (
    ("ix_events_sender_type_ts", ("sender_id", "type_name", "timestamp")),
    ("ix_events_sender_ts", ("sender_id", "timestamp")),
)


class IndexedSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore that creates its query indexes on start-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ensure_event_indexes(self.engine, self.SQLEvent.__table__)


def ensure_event_indexes(engine: sa.engine.Engine, table: sa.Table) -> None:
    """Create the composite indexes if they are missing (idempotent)."""
    existing = {ix["name"] for ix in sa.inspect(engine).get_indexes(table.name)}
    for name, columns in _INDEXES:
        if name in existing:
            continue
        sa.Index(name, *(table.c[c] for c in columns)).create(bind=engine)
        logger.info("Created tracker index %s on %s", name, ", ".join(columns))
