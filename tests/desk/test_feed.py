"""The desk's live feed reading Rasa's event-broker table late, as it does
under load: the message that asked for a person must not reach the agent as a
new live message, while the next one must."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from bot.desk.config import DeskConfig
from bot.desk.feed import Feed, Hub, _broker_table
from bot.desk.rasa_client import RasaClient


@pytest.fixture(autouse=True)
def _desk_always_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "00:00-24:00")


def _publish(url: str, sender: str, text: str, at: float) -> None:
    """What Rasa's SQLEventBroker writes for a customer message."""
    engine = create_engine(url, future=True)
    _broker_table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(_broker_table.insert().values(sender_id=sender, data=json.dumps(
            {"event": "user", "text": text, "timestamp": at, "input_channel": "rest",
             "parse_data": {"intent": {"name": "request_human"}}})))
    engine.dispose()


def test_a_late_read_of_the_request_is_not_a_new_customer_turn(crm, tmp_path: Path) -> None:
    events_url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    asked_at = time.time() - 2  # the customer wrote, then the action escalated
    _publish(events_url, "c1", "我要转人工", asked_at)
    escalation = crm.create_escalation(None, "rest", "c1", "request_human", "esc:c1")

    async def scenario() -> list[dict]:
        hub = Hub()
        watcher = hub.add("agent", escalation.id)
        rasa = RasaClient("http://127.0.0.1:9", "")
        feed = Feed(DeskConfig("", rasa.base_url, "", events_url), crm.desk, rasa, hub)
        await feed._refresh_active()  # started before the request was read: the late case
        await feed._poll_once()
        _publish(events_url, "c1", "我的快递三天没动了", time.time())
        await feed._poll_once()
        await rasa.close()
        seen = []
        while not watcher.queue.empty():
            seen.append(watcher.queue.get_nowait())
        return seen

    turns = [e for e in asyncio.run(scenario()) if e["type"] == "turn"]
    assert [t["text"] for t in turns] == ["我的快递三天没动了"]
    assert crm.desk.conversation(escalation.id).last_customer_message_at is not None
