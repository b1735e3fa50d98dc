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


FORM_DOMAIN = Domain.from_yaml("""
slots:
  verified: {type: bool, mappings: []}
  complaint_category: {type: text, mappings: []}
  requested_slot: {type: categorical, values: [complaint_category], mappings: []}
forms:
  complaint_form: {required_slots: [complaint_category]}
""")


def _long_session(turns: int) -> list:
    """A session of `turns` turns: verified in turn 2, a complaint form opened in turn 5, paused in 7."""
    from rasa.shared.core.events import ActiveLoop, ConversationPaused

    events: list = [ActionExecuted("action_session_start", timestamp=1.0), SessionStarted(timestamp=1.0),
                    ActionExecuted("action_listen", timestamp=1.0)]
    for turn in range(turns):
        at = 2.0 + turn
        events.append(UserUttered(f"第{turn}句", {"name": "inform"}, timestamp=at))
        if turn == 2:
            events.append(SlotSet("verified", True, timestamp=at))
        if turn == 5:
            events += [ActiveLoop("complaint_form", timestamp=at), SlotSet("requested_slot", "complaint_category",
                                                                            timestamp=at)]
        if turn == 7:
            events.append(ConversationPaused(timestamp=at))
        events += [BotUttered(f"回复{turn}", timestamp=at), ActionExecuted("action_listen", timestamp=at)]
    return events


def test_a_long_session_reaches_rasa_as_its_state_and_newest_whole_turns(tmp_path: Path, monkeypatch) -> None:
    """Bounded work per turn, same dialogue state, nothing lost or stored twice (WINDOW_ENV)."""
    from bot.tracker_store import WINDOW_ENV

    monkeypatch.setenv(WINDOW_ENV, "20")
    db = str(tmp_path / "tracker.sqlite3")
    ours, stock = IndexedSQLTrackerStore(FORM_DOMAIN, db=db), SQLTrackerStore(FORM_DOMAIN, db=db)
    written = DialogueStateTracker("wx-long", FORM_DOMAIN.slots)
    written.update_with_events(_long_session(30), FORM_DOMAIN)
    asyncio.run(stock.save(written))
    stored_before = len(written.events)

    windowed = asyncio.run(ours.retrieve("wx-long"))
    full = asyncio.run(stock.retrieve("wx-long"))
    assert windowed is not None and full is not None
    kinds = [e.type_name for e in windowed.events]
    assert len(windowed.events) < 30 < len(full.events)
    assert kinds[0] == "session_started"  # the session's own start
    assert kinds[1:5] == ["slot", "slot", "active_loop", "pause"]  # the older part's state
    first_kept = kinds.index("user")
    assert kinds[first_kept - 1] == "action" and windowed.events[first_kept - 1].action_name == "action_listen"
    # the same state as the whole session gives
    assert windowed.current_slot_values() == full.current_slot_values()
    assert windowed.active_loop_name == full.active_loop_name == "complaint_form"
    assert windowed.is_paused() and full.is_paused()
    assert windowed.latest_message.text == full.latest_message.text == "第29句"
    texts = [e.text for e in windowed.events if isinstance(e, UserUttered)]
    assert texts == [f"第{i}句" for i in range(30 - len(texts), 30)]

    # A new turn on the windowed tracker stores that turn only (not the synthetic state).
    windowed.update_with_events([UserUttered("新的一句", {"name": "inform"}), BotUttered("好的"),
                                 ActionExecuted("action_listen")], FORM_DOMAIN)
    asyncio.run(ours.save(windowed))
    asyncio.run(ours.save(windowed))  # nothing new
    everything = asyncio.run(ours.retrieve_full_tracker("wx-long"))
    assert len(everything.events) == stored_before + 3
    assert [e.text for e in everything.events if isinstance(e, UserUttered)] == \
        [f"第{i}句" for i in range(30)] + ["新的一句"]


def test_short_sessions_and_window_zero_load_every_event(tmp_path: Path, monkeypatch) -> None:
    from bot.tracker_store import WINDOW_ENV

    db = str(tmp_path / "tracker.sqlite3")
    written = DialogueStateTracker("wx-short", FORM_DOMAIN.slots)
    written.update_with_events(_long_session(30), FORM_DOMAIN)
    stock = SQLTrackerStore(FORM_DOMAIN, db=db)
    asyncio.run(stock.save(written))
    session = asyncio.run(stock.retrieve("wx-short"))
    for window in ("0", "1000"):
        monkeypatch.setenv(WINDOW_ENV, window)
        loaded = asyncio.run(IndexedSQLTrackerStore(FORM_DOMAIN, db=db).retrieve("wx-short"))
        assert [e.as_dict() for e in loaded.events] == [e.as_dict() for e in session.events]


def test_rows_are_column_for_column_what_the_stock_store_writes(tmp_path: Path) -> None:
    events = [SessionStarted(timestamp=1.0), ActionExecuted("action_listen", timestamp=2.0),
              UserUttered("订单260101000001到哪了", {"name": "query_order", "confidence": 0.9}, timestamp=3.0),
              SlotSet("verified", True, timestamp=4.0), BotUttered("已发货 📦", timestamp=5.0)]
    columns = "sender_id, type_name, timestamp, intent_name, action_name, data"
    written = {}
    for name, store_class in (("stock", SQLTrackerStore), ("ours", IndexedSQLTrackerStore)):
        db = tmp_path / f"{name}.sqlite3"
        tracker = DialogueStateTracker("wx-9", DOMAIN.slots)
        tracker.update_with_events(events, DOMAIN, override_timestamp=False)
        asyncio.run(store_class(DOMAIN, db=str(db)).save(tracker))
        written[name] = _rows(db, f"SELECT {columns} FROM events ORDER BY id")
    assert len(written["ours"]) == len(events)
    assert written["ours"] == written["stock"]


def test_the_tracker_and_event_files_use_the_wal_journal_on_kept_connections(tmp_path: Path) -> None:
    # One sync per commit instead of the rollback journal's several, the desk
    # reading events never blocks the Rasa server writing them, and no saved
    # turn pays a checkpoint for closing the last connection (the log stays).
    broker = BatchSQLEventBroker(db=str(tmp_path / "events.sqlite3"))
    store = IndexedSQLTrackerStore(DOMAIN, db=str(tmp_path / "tracker.sqlite3"), event_broker=broker)
    tracker = DialogueStateTracker("wx-wal", DOMAIN.slots)
    tracker.update_with_events([ActionExecuted("action_listen"), UserUttered("你好", {"name": "greet"})], DOMAIN)
    asyncio.run(store.save(tracker))
    for name in ("events", "tracker"):
        assert _rows(tmp_path / f"{name}.sqlite3", "PRAGMA journal_mode") == [("wal",)]
        assert (tmp_path / f"{name}.sqlite3-wal").exists()
    # Conversation files commit without waiting for the disk (SQLite's advice for WAL).
    for engine in (store.engine, broker.engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert asyncio.run(store.retrieve("wx-wal")).latest_message.text == "你好"


def test_turn_after_turn_a_long_session_keeps_its_state_and_reads_only_new_rows(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """The fold of one turn serves the next: same state as the whole session, bounded reads."""
    from rasa.shared.core.events import ActiveLoop, ConversationPaused, ConversationResumed

    import bot.tracker_store as module

    monkeypatch.setenv(module.WINDOW_ENV, "20")
    decoded: list[int] = []
    real_loads = json.loads

    def counting_loads(text: str):
        decoded.append(1)
        return real_loads(text)

    db = str(tmp_path / "tracker.sqlite3")
    ours, stock = IndexedSQLTrackerStore(FORM_DOMAIN, db=db), SQLTrackerStore(FORM_DOMAIN, db=db)
    first = DialogueStateTracker("wx-turns", FORM_DOMAIN.slots)
    first.update_with_events(_long_session(3), FORM_DOMAIN)
    asyncio.run(stock.save(first))
    monkeypatch.setattr(module.json, "loads", counting_loads)
    for turn in range(3, 60):
        decoded.clear()
        tracker = asyncio.run(ours.retrieve("wx-turns"))
        read = len(decoded)
        whole = asyncio.run(stock.retrieve("wx-turns"))
        assert tracker is not None and whole is not None
        assert tracker.current_slot_values() == whole.current_slot_values()
        assert tracker.active_loop_name == whole.active_loop_name
        assert tracker.is_paused() == whole.is_paused()
        assert tracker.latest_message.text == whole.latest_message.text
        assert len(tracker.events) <= 20 + 10
        if turn > 12:
            # the whole session is read by the stock store; ours reads the rows since its last fold
            assert read <= 20 + 10 < len(whole.events)
        new = [UserUttered(f"第{turn}句", {"name": "inform"})]
        if turn == 20:
            new += [ActiveLoop("complaint_form"), SlotSet("complaint_category", "快递")]
        if turn == 25:
            new += [ConversationPaused()]
        if turn == 33:
            new += [ConversationResumed(), ActiveLoop(None), SlotSet("complaint_category", None)]
        new += [BotUttered(f"回复{turn}"), ActionExecuted("action_listen")]
        tracker.update_with_events(new, FORM_DOMAIN)
        asyncio.run(ours.save(tracker))
    everything = asyncio.run(ours.retrieve_full_tracker("wx-turns"))
    assert [e.text for e in everything.events if isinstance(e, UserUttered)] == [f"第{i}句" for i in range(60)]
    # the synthetic state was never stored: one SlotSet of `verified`, the real one
    assert sum(1 for e in everything.events if isinstance(e, SlotSet) and e.key == "verified") == 1


def test_the_window_keeps_the_last_five_turns_even_when_they_are_long(tmp_path: Path, monkeypatch) -> None:
    """A form turn resets ~20 slots: 60 events can be two turns, too few for the
    three-turn upset streak; the window never keeps fewer than MIN_KEPT_TURNS turns."""
    import bot.tracker_store as module

    monkeypatch.setenv(module.WINDOW_ENV, "20")
    db = str(tmp_path / "tracker.sqlite3")
    written = DialogueStateTracker("wx-wide", FORM_DOMAIN.slots)
    events: list = [ActionExecuted("action_session_start", timestamp=1.0), SessionStarted(timestamp=1.0),
                    ActionExecuted("action_listen", timestamp=1.0)]
    for turn in range(12):
        at = 2.0 + turn
        events.append(UserUttered(f"第{turn}句", {"name": "complain"}, timestamp=at))
        events += [SlotSet("complaint_category", None, timestamp=at) for _ in range(15)]
        events += [BotUttered(f"回复{turn}", timestamp=at), ActionExecuted("action_listen", timestamp=at)]
    written.update_with_events(events, FORM_DOMAIN, override_timestamp=False)
    asyncio.run(SQLTrackerStore(FORM_DOMAIN, db=db).save(written))
    windowed = asyncio.run(IndexedSQLTrackerStore(FORM_DOMAIN, db=db).retrieve("wx-wide"))
    texts = [e.text for e in windowed.events if isinstance(e, UserUttered)]
    assert texts == [f"第{i}句" for i in range(7, 12)]  # five whole turns, 90 events > the window of 20
    assert "session_started" in [e.type_name for e in list(windowed.events)[:2]]  # the session's own start


_OPEN_STORES = """
import sys, time
from bot.event_broker import BatchSQLEventBroker
from bot.tracker_store import IndexedSQLTrackerStore
start = float(sys.argv[3])
time.sleep(max(start - time.time(), 0))  # all together, as forked Sanic workers start
IndexedSQLTrackerStore(domain=None, dialect="sqlite", db=sys.argv[1])
BatchSQLEventBroker(dialect="sqlite", db=sys.argv[2])
print("ok")
"""


def test_workers_opening_new_store_files_together_all_get_them(tmp_path: Path) -> None:
    # Two Rasa workers on a fresh tracker file: both found the indexes missing,
    # both created them, and the second worker died ("already exists").
    import subprocess
    import sys
    import time

    from bot.settings import ROOT

    start = time.time() + 8  # after every process has imported Rasa
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_STORES, str(tmp_path / "tracker.sqlite3"),
                               str(tmp_path / "events.sqlite3"), str(start)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-600:] for _, err in results]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tracker.sqlite3'}")
    indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("events")}
    assert "ix_events_sender_ts" in indexes
