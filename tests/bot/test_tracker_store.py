"""The SQL tracker store stores each event once and hands the broker exactly those."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.event_broker import BatchSQLEventBroker
from bot.tracker_store import IndexedSQLTrackerStore

DOMAIN = Domain.from_yaml("slots:\n  verified:\n    type: bool\n    mappings: []\n")


def _rows(db: Path, query: str) -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text(query)))
    engine.dispose()
    return rows


def test_save_stores_and_publishes_each_new_event_once(tmp_path: Path) -> None:
    broker = BatchSQLEventBroker(db=str(tmp_path / "events.sqlite3"))
    store = IndexedSQLTrackerStore(DOMAIN, db=str(tmp_path / "tracker.sqlite3"), event_broker=broker)

    async def conversation() -> DialogueStateTracker:
        tracker = DialogueStateTracker("wx-123", DOMAIN.slots)
        tracker.update_with_events([SessionStarted(), ActionExecuted("action_listen")], DOMAIN)
        await store.save(tracker)
        tracker = await store.retrieve("wx-123")  # as Rasa does for the next message
        tracker.update_with_events([UserUttered("我的快递到哪了", {"name": "query_order"}),
                                    SlotSet("verified", True), BotUttered("已发货"),
                                    ActionExecuted("action_listen")], DOMAIN)
        await store.save(tracker)
        await store.save(tracker)  # nothing new: nothing stored or published twice
        return await store.retrieve("wx-123")

    restored = asyncio.run(conversation())
    stored = _rows(tmp_path / "tracker.sqlite3", "SELECT type_name, intent_name FROM events ORDER BY id")
    published = [json.loads(d) for (d,) in _rows(tmp_path / "events.sqlite3", "SELECT data FROM events ORDER BY id")]
    assert [t for t, _ in stored] == ["session_started", "action", "user", "slot", "bot", "action"]
    assert ("user", "query_order") in stored
    assert [e["event"] for e in published] == [t for t, _ in stored]
    assert {e["sender_id"] for e in published} == {"wx-123"}
    assert restored is not None and restored.get_slot("verified") is True
    assert restored.latest_message.text == "我的快递到哪了"


def test_a_broker_without_publish_many_gets_each_event(tmp_path: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.bodies: list[dict] = []

        def publish(self, body: dict) -> None:
            self.bodies.append(body)

    recorder = Recorder()
    store = IndexedSQLTrackerStore(DOMAIN, db=str(tmp_path / "tracker.sqlite3"), event_broker=recorder)
    tracker = DialogueStateTracker("web-1", DOMAIN.slots)
    tracker.update_with_events([ActionExecuted("action_listen"), UserUttered("你好", {"name": "greet"})], DOMAIN)
    asyncio.run(store.save(tracker))
    assert [b["event"] for b in recorder.bodies] == ["action", "user"]


def test_stock_and_indexed_store_share_one_table(tmp_path: Path) -> None:
    """A database written by the stock store is read by ours (and the reverse)."""
    db = str(tmp_path / "tracker.sqlite3")
    tracker = DialogueStateTracker("web-2", DOMAIN.slots)
    tracker.update_with_events([ActionExecuted("action_listen"), UserUttered("退货", {"name": "request_return"})], DOMAIN)
    asyncio.run(SQLTrackerStore(DOMAIN, db=db).save(tracker))
    restored = asyncio.run(IndexedSQLTrackerStore(DOMAIN, db=db).retrieve("web-2"))
    assert restored is not None and restored.latest_message.intent["name"] == "request_return"


def test_only_the_current_session_is_loaded_in_order(tmp_path: Path) -> None:
    """Same answer as the stock store: the latest session's events, oldest first."""
    db = str(tmp_path / "tracker.sqlite3")
    ours, stock = IndexedSQLTrackerStore(DOMAIN, db=db), SQLTrackerStore(DOMAIN, db=db)
    tracker = DialogueStateTracker("wx-9", DOMAIN.slots)
    tracker.update_with_events([SessionStarted(timestamp=1.0), ActionExecuted("action_listen", timestamp=2.0),
                                UserUttered("旧会话", {"name": "greet"}, timestamp=3.0),
                                SessionStarted(timestamp=10.0), ActionExecuted("action_listen", timestamp=11.0),
                                UserUttered("新会话", {"name": "query_order"}, timestamp=12.0),
                                SlotSet("verified", True, timestamp=12.0)], DOMAIN)
    asyncio.run(stock.save(tracker))
    mine = asyncio.run(ours.retrieve("wx-9"))
    theirs = asyncio.run(stock.retrieve("wx-9"))
    assert mine is not None and theirs is not None
    assert [e.as_dict() for e in mine.events] == [e.as_dict() for e in theirs.events]
    assert [e.type_name for e in mine.events] == ["session_started", "action", "user", "slot"]
    assert mine.latest_message.text == "新会话" and mine.get_slot("verified") is True
    assert asyncio.run(ours.retrieve("nobody")) is None
    assert len(asyncio.run(ours.retrieve_full_tracker("wx-9")).events) == 7
