"""Rasa's SQL event broker, writing one message's events in one transaction.

Why: the stock `SQLEventBroker.publish` opens a session and commits once per
event, and a customer message produces five to fifteen events (user, slots,
loop, actions, bot utterances).  On SQLite every commit is a file sync, so the
broker alone cost ~10 % of the Rasa process under load (BENCHMARKS.md).
`IndexedSQLTrackerStore.save` hands a message's new events over together.
Rows and table are the stock ones, so anything reading `events` is unaffected.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable

from rasa.core.brokers.sql import SQLEventBroker

from bot.tracker_store import sqlite_schema_lock, use_pooled_sqlite


class BatchSQLEventBroker(SQLEventBroker):
    """SQLEventBroker with `publish_many`: all of a message's events, one commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with sqlite_schema_lock(kwargs.get("dialect", "sqlite"), kwargs.get("db", "events.db")):
            super().__init__(*args, **kwargs)  # creates the table
        use_pooled_sqlite(self)
        self._insert = self.SQLBrokerEvent.__table__.insert()  # built once, run every turn

    def publish_many(self, events: Iterable[Dict[str, Any]]) -> None:
        rows = [{"sender_id": e.get("sender_id"), "data": json.dumps(e)} for e in events]
        if not rows:
            return
        with self.engine.begin() as connection:
            connection.execute(self._insert, rows)
