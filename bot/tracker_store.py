"""Rasa's SQL tracker store plus the indexes its per-message query needs.

Rasa 3.6 loads a conversation with "events of this sender since the latest
`session_started`", which filters on (sender_id, type_name) and then on
(sender_id, timestamp).  The stock table only indexes sender_id, so a
customer's cost grows with every event ever stored for them.  These two
composite indexes make both parts index range scans, keeping latency flat for
customers who have talked to us for months (see BENCHMARKS.md).

`save` is also reworked: the stock store re-loads the whole session from the
database on every save only to work out which events are new for the event
broker, then the broker commits once per event.  Here the new events are
found once (the same count query the stock `save` already runs), stored, and
handed to the broker together, so one message costs one load and two commits.
Events reach the broker only after they are stored.

`_retrieve` runs the stock query but fetches only the `data` column: the
stock one builds an ORM object per stored event just to read that column,
which was a seventh of the Rasa process's time under load.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

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

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> Optional[DialogueStateTracker]:
        """The stock query and result, without an ORM object per event."""
        with self.session_scope() as session:
            rows = (
                self._event_query(session, sender_id, fetch_events_from_all_sessions)
                .with_entities(self.SQLEvent.data)
                .all()
            )
        events = [json.loads(data) for (data,) in rows]
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the events not yet stored, then publish exactly those."""
        with self.session_scope() as session:
            new_events: List[Event] = list(self._additional_events(session, tracker))
            session.add_all([self._row(tracker.sender_id, event) for event in new_events])
            session.commit()
        if self.event_broker is not None and new_events:
            bodies = [{"sender_id": tracker.sender_id, **event.as_dict()} for event in new_events]
            publish_many = getattr(self.event_broker, "publish_many", None)
            if publish_many is not None:
                publish_many(bodies)
            else:
                for body in bodies:
                    self.event_broker.publish(body)

    def _row(self, sender_id: str, event: Event) -> Any:
        """The stock row for one event (same columns as SQLTrackerStore.save)."""
        data: Dict[str, Any] = event.as_dict()
        return self.SQLEvent(
            sender_id=sender_id,
            type_name=event.type_name,
            timestamp=data.get("timestamp"),
            intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
            action_name=data.get("name"),
            data=json.dumps(data),
        )


def ensure_event_indexes(engine: sa.engine.Engine, table: sa.Table) -> None:
    """Create the composite indexes if they are missing (idempotent)."""
    existing = {ix["name"] for ix in sa.inspect(engine).get_indexes(table.name)}
    for name, columns in _INDEXES:
        if name in existing:
            continue
        sa.Index(name, *(table.c[c] for c in columns)).create(bind=engine)
        logger.info("Created tracker index %s on %s", name, ", ".join(columns))
