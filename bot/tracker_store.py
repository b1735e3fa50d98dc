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

**A turn sees a bounded window of its session.**  A session ends only after
an hour of silence, so a customer who keeps writing keeps one session
growing, and every turn loads, featurises (rule and memoization policies)
and serialises (each action call) the whole of it: the Rasa process's peak
memory and each turn's time grew with the longest session (~31 kB and a few
ms per message of it; BENCHMARKS.md, "Soak", run 6).  When the current
session holds more than ``KEFU_SESSION_WINDOW_EVENTS`` events (default 60,
about 8 short turns, and never fewer than the last 5 turns; 0 = off) the
tracker handed to Rasa is: the session's start,
the state the older part left (its slots, active form, pause) as
SlotSet/ActiveLoop/ConversationPaused events, and the newest whole turns,
about half a window of them (so the next few turns are appended to this
tracker, and a kept one, see below, serves them without a load).
Nothing is deleted: the database keeps every event, the desk and exports
read all of them, and `save` stores exactly the events added since the
load (counted from the loaded tracker, not re-counted in the database).

**The tracker a turn saved serves the sender's next turn** (`_Kept`), when
the database shows nothing new for the sender since (one indexed `max(id)`
query instead of loading, decoding and replaying the session: a seventh of
the Rasa process's CPU under the REST load).  It is kept only when it is
exactly what a load would give: it was loaded (or kept) by this store, every
event it holds is stored and no other writer stored one in between, no new
session started in it, and it is within the window, so no fold would cut it.
A kept tracker is handed to one caller only (taken out on retrieve, put back
on save), so two callers never share a tracker object; a turn that fails
before its save leaves nothing kept, and the next turn loads from the
database.  ``KEFU_TRACKER_CACHE_SIZE`` senders are kept (default 1000; 0 =
off).
"""
from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
from collections import OrderedDict
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActiveLoop, ConversationPaused, Event, SessionStarted, SlotSet
from rasa.shared.core.slots import Slot
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

from bot.settings import number_from_env
from crm_adapter.config import pooled_sqlite_engine

logger = logging.getLogger(__name__)

_INDEXES = (
    ("ix_events_sender_type_ts", ("sender_id", "type_name", "timestamp")),
    ("ix_events_sender_ts", ("sender_id", "timestamp")),
)
# For "this sender's newest row" (a kept tracker's check).  SQLite's sender
# index already ends in the row id; other databases need it spelled out.
_ID_INDEX = ("ix_events_sender_id_id", ("sender_id", "id"))


WINDOW_ENV = "KEFU_SESSION_WINDOW_EVENTS"
DEFAULT_WINDOW = 60
# Whole customer turns a windowed tracker always keeps, however many events
# they hold: a turn that runs a form resets ~20 slots, so 60 events can be
# two turns, and the upset streak (3 turns), the repeated-fallback count
# (2) and the memoization policy (4 states) look further back than that.
MIN_KEPT_TURNS = 5
# Set on trackers this store loaded: how many of their events are stored.
_STORED = "_kefu_stored_events"
# Set on trackers this store loaded from the windowed session (or kept): the
# newest stored row they hold.  Absent = not a candidate for keeping.
_LAST_ID = "_kefu_last_event_id"
CACHE_ENV = "KEFU_TRACKER_CACHE_SIZE"
DEFAULT_CACHE_SIZE = 1000


def session_window() -> int:
    """Most events of the current session a turn is given (``KEFU_SESSION_WINDOW_EVENTS``); 0 = all."""
    return max(number_from_env(WINDOW_ENV, DEFAULT_WINDOW, int), 0)


def fold_session(sender_id: str, events: List[Dict[str, Any]], slots: Iterable[Slot], window: int,
                 fixed: int) -> Optional[tuple[List[Dict[str, Any]], int]]:
    """Where to cut ``events`` and what stands for the part before the cut.

    ``events`` are one session's serialised events, oldest first.  The kept
    tail starts at the ``action_listen`` before a customer message, so every
    kept turn is whole and its first state has the previous action Rasa's
    rules look at.

    Returns ``(prefix, cut)``: the session's start plus the state of
    ``events[:cut]`` as events, to be followed by ``events[cut:]``; None when
    no cut is needed or possible.  The first ``fixed`` events are an earlier
    prefix (already folded), so the cut falls after them.
    """
    if window <= 0 or len(events) <= window:
        return None
    users = [i for i in range(fixed + 1, len(events)) if events[i].get("event") == "user"]
    if len(users) <= MIN_KEPT_TURNS:
        return None
    # Cut before a customer message that follows an action_listen, keeping
    # about half a window (the next turns then fit without another cut), and
    # at least MIN_KEPT_TURNS whole turns even when they hold more than that.
    cuts = [i for i in users[:len(users) - MIN_KEPT_TURNS + 1]
            if events[i - 1].get("event") == "action" and events[i - 1].get("name") == "action_listen"]
    if not cuts:
        return None
    cut = next((i for i in cuts if i >= len(events) - window // 2), cuts[-1])
    cut -= 1  # keep the action_listen
    if cut <= fixed:
        return None
    starts = [i for i in range(cut) if events[i].get("event") == "session_started"]
    head = events[:starts[-1] + 1] if starts else []
    before = DialogueStateTracker.from_dict(sender_id, events[:cut], slots)
    at = events[cut - 1].get("timestamp") if cut else None
    state: List[Event] = [SlotSet(slot.name, slot.value, timestamp=at)
                          for slot in before.slots.values() if slot.value != slot.initial_value]
    if before.active_loop_name:
        state.append(ActiveLoop(before.active_loop_name, timestamp=at))
    if before.is_paused():
        state.append(ConversationPaused(timestamp=at))
    return head + [event.as_dict() for event in state], cut


@contextlib.contextmanager
def sqlite_schema_lock(dialect: Optional[str], db: Optional[str]) -> Iterator[None]:
    """One process at a time creates a SQLite file's tables and indexes.

    Several Rasa workers (KEFU_RASA_WORKERS) start together on the same new
    file: each checks that the `events` table or an index is missing, each
    creates it, and the second fails ("index ix_events_sender_ts already
    exists"), so that worker never loads its tracker store.  An exclusive
    lock on a file beside the database makes the second wait and find them
    made.  Other databases are left to the server's own locking.
    """
    if (dialect or "sqlite") != "sqlite" or not db or db == ":memory:":
        yield
        return
    with open(f"{db}.schema-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def use_pooled_sqlite(store: Any) -> None:
    """Give a Rasa SQL store (tracker store, event broker) pooled WAL connections to a SQLite file.

    A commit then syncs the log once instead of the rollback journal's
    several syncs, no turn pays a checkpoint for closing its connection, and
    the desk's readers never block the writer (`pooled_sqlite_engine`).

    `synchronous=NORMAL`, as SQLite recommends for WAL: a commit no longer
    waits for the disk (the log is synced at checkpoints), which took ~6 % of
    the Rasa process's event loop under load, two commits a turn.  The file
    cannot be corrupted by a crash; a power cut or OS crash can lose the last
    turns' conversation events.  Business records (complaints, returns,
    escalations, consents) are the CRM's, which keeps FULL.
    """
    engine = pooled_sqlite_engine(store.engine, synchronous="NORMAL")
    if engine is store.engine:
        return
    store.engine.dispose()
    store.engine = engine
    store.sessionmaker = sa.orm.sessionmaker(bind=engine)


class _Folded(NamedTuple):
    """A sender's session, folded up to a stored row: reused by the next turn."""

    session_start: Optional[float]  # the session's `session_started` timestamp
    upto_id: int  # the last stored row the prefix stands for
    prefix: List[Dict[str, Any]]  # the session's start and the state those rows left


# Senders whose folded session a server remembers (a few kB each).
FOLD_CACHE_SIZE = 5000


class _Statements:
    """The statements every turn runs, built once with bound parameters.

    Building them per call (expressions, literal coercion, cache keys) was
    ~4 % of the Rasa process under the REST load; the SQL is the same.  They
    run on a pooled connection in one transaction (`engine.begin()`), not in
    an ORM session: a session's set-up, connection binding and close were
    another ~8 % of a turn's retrieve and save (in-process A/B, six pairs).
    """

    def __init__(self, table: sa.Table) -> None:
        c = table.c
        sender = c.sender_id == sa.bindparam("sender")
        self.insert = table.insert()
        self.newest_id = sa.select(sa.func.max(c.id)).where(sender)
        self.stored_since = sa.select(sa.func.count(), sa.func.max(c.id)).where(
            sender, c.id > sa.bindparam("after"))
        self.session_start = sa.select(sa.func.max(c.timestamp)).where(
            sender, c.type_name == SessionStarted.type_name)
        rows = sa.select(c.id, c.data).where(sender)
        in_session = rows.where(c.timestamp >= sa.bindparam("start"))
        # (since a session start?, after a row id?) -> the rows query
        self.rows = {
            (False, False): rows.order_by(c.id),
            (True, False): in_session.order_by(c.id),
            (False, True): rows.where(c.id > sa.bindparam("after")).order_by(c.id),
            (True, True): in_session.where(c.id > sa.bindparam("after")).order_by(c.id),
        }


class _Kept(NamedTuple):
    """A tracker saved by the sender's last turn, to serve the next one."""

    tracker: DialogueStateTracker
    events: int  # how many events it held when saved (more = changed since, unsaved)
    last_id: int  # the sender's newest stored row when it was saved


def tracker_cache_size() -> int:
    """Senders whose last saved tracker is kept (``KEFU_TRACKER_CACHE_SIZE``); 0 = none."""
    return max(number_from_env(CACHE_ENV, DEFAULT_CACHE_SIZE, int), 0)


class IndexedSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore that creates its query indexes on start-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with sqlite_schema_lock(kwargs.get("dialect", "sqlite"), kwargs.get("db", "rasa.db")):
            super().__init__(*args, **kwargs)
            ensure_event_indexes(self.engine, self.SQLEvent.__table__)
        use_pooled_sqlite(self)
        self._folded: "OrderedDict[str, _Folded]" = OrderedDict()
        self._kept: "OrderedDict[str, _Kept]" = OrderedDict()
        self._sql = _Statements(self.SQLEvent.__table__)

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> Optional[DialogueStateTracker]:
        """The stock query and result, without an ORM object per event."""
        if fetch_events_from_all_sessions or not self.domain or session_window() <= 0:
            with self.session_scope() as session:
                rows = (
                    self._event_query(session, sender_id, fetch_events_from_all_sessions)
                    .with_entities(self.SQLEvent.data)
                    .all()
                )
            events = [json.loads(data) for (data,) in rows]
            if not (self.domain and events):
                return None
        else:
            kept = self._take_kept(sender_id)
            if kept is not None:
                return kept
            events, last_id = self._current_session_windowed(sender_id)
            if not events:
                return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        setattr(tracker, _STORED, len(tracker.events))
        if not fetch_events_from_all_sessions and session_window() > 0:
            setattr(tracker, _LAST_ID, last_id)
        return tracker

    def _take_kept(self, sender_id: str) -> Optional[DialogueStateTracker]:
        """The sender's kept tracker, if still exactly what a load would give (see module doc)."""
        kept = self._kept.pop(sender_id, None)
        if kept is None or len(kept.tracker.events) != kept.events:
            return None
        with self.engine.begin() as connection:
            newest = connection.execute(self._sql.newest_id, {"sender": sender_id}).scalar()
        return kept.tracker if newest == kept.last_id else None

    def _keep(self, tracker: DialogueStateTracker, new_events: List[Event], stored_now: Optional[tuple]) -> None:
        """Remember a just-saved tracker for the sender's next turn, if a load would give the same."""
        size = tracker_cache_size()
        if (size == 0 or stored_now is None or getattr(tracker, _LAST_ID, None) is None
                or any(isinstance(event, SessionStarted) for event in new_events)
                or len(tracker.events) > session_window()):
            if hasattr(tracker, _LAST_ID):
                delattr(tracker, _LAST_ID)  # a new session or a fold: only a load gives the right tracker
            return
        count, newest = stored_now
        if count != len(new_events) or newest is None:
            delattr(tracker, _LAST_ID)  # another writer stored events for this sender: load next time
            return
        setattr(tracker, _LAST_ID, newest)
        self._kept[tracker.sender_id] = _Kept(tracker, len(tracker.events), newest)
        self._kept.move_to_end(tracker.sender_id)
        while len(self._kept) > size:
            self._kept.popitem(last=False)

    def _current_session_windowed(self, sender_id: str) -> tuple[List[Dict[str, Any]], Optional[int]]:
        """The current session, windowed by `fold_session`, reading only what is new,
        and the newest row read.

        Events are only ever appended, so the state a session's older rows
        left does not change: the fold made for one turn (`_Folded`) serves
        the next, which reads just the rows stored after it and replays at
        most a window's worth to move the cut on.  Without this, every turn
        read, decoded and replayed the whole session (~4 kB of peak memory and
        a quarter of the process's time per message on long sessions;
        BENCHMARKS.md).  The fold is used only while the same session is the
        current one.
        """
        sql = self._sql
        with self.engine.begin() as connection:  # one snapshot for the two or three reads
            session_start = connection.execute(sql.session_start, {"sender": sender_id}).scalar()
            params: Dict[str, Any] = {"sender": sender_id, "start": session_start}
            in_session = session_start is not None
            folded = self._folded.get(sender_id)
            rows = []
            if folded is not None and folded.session_start == session_start:
                rows = connection.execute(sql.rows[in_session, True], {**params, "after": folded.upto_id}).all()
            if rows:
                prefix = folded.prefix
                self._folded.move_to_end(sender_id)
            else:
                prefix = []
                rows = connection.execute(sql.rows[in_session, False], params).all()
        events = prefix + [json.loads(data) for _, data in rows]
        last_id = rows[-1][0] if rows else None
        fold = fold_session(sender_id, events, self.domain.slots, session_window(), fixed=len(prefix))
        if fold is None:
            return events, last_id
        new_prefix, cut = fold
        self._folded[sender_id] = _Folded(session_start, rows[cut - len(prefix) - 1][0], new_prefix)
        self._folded.move_to_end(sender_id)
        while len(self._folded) > FOLD_CACHE_SIZE:
            self._folded.popitem(last=False)
        return new_prefix + events[cut:], last_id

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the events not yet stored, then publish exactly those."""
        stored: Optional[int] = getattr(tracker, _STORED, None)
        last_id: Optional[int] = getattr(tracker, _LAST_ID, None)
        stored_now: Optional[tuple] = None
        if stored is None:  # a tracker this store did not load: ask the database, as stock does
            with self.session_scope() as session:
                new_events: List[Event] = list(self._additional_events(session, tracker))
        else:
            new_events = list(itertools.islice(tracker.events, stored, None))
        serialised = [(event, event.as_dict()) for event in new_events]
        if serialised:
            with self.engine.begin() as connection:
                # One executemany of plain rows: the ORM's unit of work built an
                # object per event only to insert it (BENCHMARKS.md, REST).
                connection.execute(self._sql.insert,
                                   [self._row(tracker.sender_id, event, data) for event, data in serialised])
                if last_id is not None:
                    # What this sender has stored since the tracker was loaded:
                    # exactly our rows, unless another writer got in between.
                    stored_now = tuple(connection.execute(
                        self._sql.stored_since, {"sender": tracker.sender_id, "after": last_id}).one())
        elif last_id is not None:
            stored_now = (0, last_id)  # nothing new; `_take_kept` checks for other writers
        setattr(tracker, _STORED, len(tracker.events))
        self._keep(tracker, [event for event, _ in serialised], stored_now)
        if self.event_broker is not None and serialised:
            bodies = [{"sender_id": tracker.sender_id, **data} for _, data in serialised]
            publish_many = getattr(self.event_broker, "publish_many", None)
            if publish_many is not None:
                publish_many(bodies)
            else:
                for body in bodies:
                    self.event_broker.publish(body)

    @staticmethod
    def _row(sender_id: str, event: Event, data: Dict[str, Any]) -> Dict[str, Any]:
        """The stock row's columns for one event (same as SQLTrackerStore.save)."""
        return {
            "sender_id": sender_id,
            "type_name": event.type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }


def ensure_event_indexes(engine: sa.engine.Engine, table: sa.Table) -> None:
    """Create the composite indexes if they are missing (idempotent)."""
    existing = {ix["name"] for ix in sa.inspect(engine).get_indexes(table.name)}
    wanted = _INDEXES if engine.dialect.name == "sqlite" else (*_INDEXES, _ID_INDEX)
    for name, columns in wanted:
        if name in existing:
            continue
        sa.Index(name, *(table.c[c] for c in columns)).create(bind=engine)
        logger.info("Created tracker index %s on %s", name, ", ".join(columns))
