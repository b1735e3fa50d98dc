"""Live updates for open desk pages, and the desk's background duties.

Two sources, both polled by id every ~0.5 s (no extra service to run):

* Rasa's SQL event broker table (``events``: id, sender_id, data JSON): the
  customer's messages and every bot/agent message of a handed-off chat.  A
  customer message in a queued chat may earn them a queue-place notice.
* The CRM's escalation timeline (`ServiceDesk.events_since`): new
  escalations, claims, transfers, notes, resolves — by this desk process,
  another one, or the action server.

Pages subscribe through `/desk/events` (server-sent events).  Nothing here is
state that matters: a restarted desk starts tailing from the newest ids and
the pages re-fetch what they show when their EventSource reconnects.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from crm_adapter.errors import CRMError
from crm_adapter.servicedesk import ServiceDesk, StaffView

from . import flows
from .config import DeskConfig
from .rasa_client import RasaClient, turn_from_event

log = logging.getLogger("kefu.desk.feed")

# The stock table of rasa.core.brokers.sql.SQLEventBroker (read only).
_broker_table = Table("events", MetaData(), Column("id", Integer, primary_key=True),
                      Column("sender_id", String(255)), Column("data", Text))
STATE_KINDS = {"created", "raised", "claimed", "assigned", "transferred", "resolved"}


@dataclass(eq=False)
class Subscriber:
    username: str
    conversation_id: Optional[int]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=500))

    def offer(self, event: Optional[dict[str, Any]]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # a stuck browser; it re-fetches when it reconnects
            pass


class Hub:
    """The open event streams of this process."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def add(self, username: str, conversation_id: Optional[int]) -> Subscriber:
        subscriber = Subscriber(username, conversation_id)
        self.subscribers.add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def usernames(self) -> set[str]:
        return {s.username for s in self.subscribers}

    def to_all(self, event: dict[str, Any]) -> None:
        for s in list(self.subscribers):
            s.offer(event)

    def to_conversation(self, escalation_id: int, event: dict[str, Any]) -> None:
        for s in list(self.subscribers):
            if s.conversation_id == escalation_id:
                s.offer(event)

    def close_all(self) -> None:
        for s in list(self.subscribers):
            s.offer(None)


class BrokerTail:
    """Reads new rows of the event broker's table; a missing table is just 'nothing yet'."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        self.last_id = 0

    def start_at_end(self) -> None:
        try:
            with self._engine.connect() as conn:
                self.last_id = conn.execute(select(func.max(_broker_table.c.id))).scalar() or 0
        except SQLAlchemyError:
            self.last_id = 0

    def read(self, limit: int = 500) -> list[tuple[int, str, dict[str, Any]]]:
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(select(_broker_table.c.id, _broker_table.c.sender_id, _broker_table.c.data)
                                    .where(_broker_table.c.id > self.last_id)
                                    .order_by(_broker_table.c.id).limit(limit)).all()
        except SQLAlchemyError as exc:
            log.debug("event broker table not readable yet: %s", type(exc).__name__)
            return []
        result = []
        for row in rows:
            self.last_id = row.id
            try:
                data = json.loads(row.data)
            except (TypeError, ValueError):
                continue
            if isinstance(data, dict):
                result.append((row.id, row.sender_id, data))
        return result

    def dispose(self) -> None:
        self._engine.dispose()


class Feed:
    """The background tasks of one desk process."""

    def __init__(self, config: DeskConfig, desk: ServiceDesk, rasa: RasaClient, hub: Hub) -> None:
        self.config = config
        self.desk = desk
        self.rasa = rasa
        self.hub = hub
        self.broker = BrokerTail(config.events_url) if config.events_url else None
        self.last_desk_event = 0
        #: sender id -> [(channel, escalation id)] of the pending and open chats.
        self.active: dict[str, list[tuple[str, int]]] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if self.broker is not None:
            await asyncio.to_thread(self.broker.start_at_end)
        try:
            self.last_desk_event = await asyncio.to_thread(self.desk.last_event_id)
        except CRMError:
            self.last_desk_event = 0
        await self._refresh_active()
        self._tasks = [asyncio.create_task(self._loop(self._poll_once, self.config.poll_interval_s)),
                       asyncio.create_task(self._loop(self._heartbeats, self.config.heartbeat_s))]
        if self.config.auto_assign:
            self._tasks.append(asyncio.create_task(self._loop(self._auto_assign, self.config.auto_assign_s)))

    async def stop(self) -> None:
        self.hub.close_all()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.broker is not None:
            self.broker.dispose()

    @staticmethod
    async def _loop(step: Any, every: float) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad round must not end live updates
                log.warning("desk background step %s failed: %s", step.__name__, type(exc).__name__)
            await asyncio.sleep(every)

    async def _refresh_active(self) -> None:
        try:
            chats = await asyncio.to_thread(self.desk.conversations)
        except CRMError:
            return
        active: dict[str, list[tuple[str, int]]] = {}
        for c in chats:
            active.setdefault(c.sender_id, []).append((c.channel, c.id))
        self.active = active

    async def _poll_once(self) -> None:
        await self._desk_events()  # first, so a chat escalated a moment ago is known below
        if self.broker is not None:
            await self._broker_events()

    async def _desk_events(self) -> None:
        events = await asyncio.to_thread(self.desk.events_since, self.last_desk_event)
        if not events:
            return
        self.last_desk_event = events[-1].id
        if any(e.kind in STATE_KINDS for e in events):
            await self._refresh_active()
        for e in events:
            self.hub.to_all({"type": "queue", "kind": e.kind, "escalation_id": e.escalation_id})
            self.hub.to_conversation(e.escalation_id, {
                "type": "timeline", "id": e.id, "kind": e.kind, "actor": e.actor, "body": e.body,
                "escalation_id": e.escalation_id, "at": e.created_at.isoformat()})

    async def _broker_events(self) -> None:
        rows = await asyncio.to_thread(self.broker.read)
        for _, sender, data in rows:
            if sender not in self.active or data.get("event") not in ("user", "bot"):
                continue
            turn = turn_from_event(data)
            if data["event"] == "user" and turn is None:
                continue  # a triggered intent (EXTERNAL_*), not the customer writing
            if data["event"] == "user":
                channel = str(data.get("input_channel") or "")
                conversation, notice = await asyncio.to_thread(self.desk.customer_wrote, channel, sender,
                                                               turn.at)
                if conversation is None:
                    continue
                ids = [conversation.id]
                if notice:
                    asyncio.create_task(flows.tell_queue_place(self.desk, self.rasa, conversation.id, sender))
            else:
                ids = [escalation_id for _, escalation_id in self.active[sender]]
            if turn is None:
                continue
            for escalation_id in ids:
                self.hub.to_conversation(escalation_id, {"type": "turn", "escalation_id": escalation_id,
                                                         **turn.as_json()})
                if turn.who == "customer":
                    self.hub.to_all({"type": "activity", "escalation_id": escalation_id})

    async def _heartbeats(self) -> None:
        for username in self.hub.usernames():
            await asyncio.to_thread(self.desk.heartbeat, username)

    async def _auto_assign(self) -> None:
        assigned = await asyncio.to_thread(self.desk.auto_assign)
        if not assigned:
            return
        staff = {s.username: s for s in await asyncio.to_thread(self.desk.list_staff)}
        for conversation in assigned:
            agent: Optional[StaffView] = staff.get(conversation.assigned_to or "")
            if agent is not None:
                outcome = await flows.start_serving(self.rasa, conversation, agent)
                if outcome.warning:
                    log.warning("auto-assigned escalation %s: %s", conversation.id, outcome.warning)
