"""Helpers for the desk tests: staff accounts in the stack's CRM and a
signed-in browser-like HTTP client (session cookie + CSRF header)."""
from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Optional

import pytest
import requests

from bot.run import Stack
from tests.desk_client import PASSWORD, DeskClient  # noqa: F401 (re-exported for the desk tests)


def new_username(prefix: str = "agent") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def stack_desk(stack: Stack):
    """The ServiceDesk over the running stack's CRM (the test's own connection)."""
    from crm_adapter import CRM

    crm = CRM(stack.settings.crm_url)
    yield crm.desk
    crm.dispose()


def desk_url(stack: Stack) -> str:
    return stack.settings.desk_url


@pytest.fixture()
def make_agent(stack: Stack, stack_desk) -> Callable[..., DeskClient]:
    """Creates a staff account and returns a client signed in as it."""
    def make(role: str = "agent", name: str = "测试客服") -> DeskClient:
        username = new_username(role)
        stack_desk.create_staff(username, name, role, PASSWORD)
        client = DeskClient(desk_url(stack))
        assert client.login(username).status_code == 302
        return client

    return make


class EventStream:
    """Reads /desk/events in a thread; events land in a queue as (type, data)."""

    def __init__(self, client: DeskClient, conversation: Optional[int] = None) -> None:
        url = f"{client.base}/desk/events" + (f"?conversation={conversation}" if conversation else "")
        self.response = client.http.get(url, stream=True, timeout=(5, 60))
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.events: "queue.Queue[tuple[str, dict]]" = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind, data = "message", []
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line is None:
                    continue
                if line == "":
                    if data:
                        self.events.put((kind, json.loads("\n".join(data))))
                    kind, data = "message", []
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except (requests.RequestException, AttributeError, ValueError):
            pass

    def wait_for(self, predicate: Callable[[str, dict], bool], timeout: float = 15.0) -> tuple[str, dict]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                kind, data = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            seen.append((kind, data))
            if predicate(kind, data):
                return kind, data
        raise AssertionError(f"no matching event within {timeout}s; saw {seen}")

    def close(self) -> None:
        self.response.close()


@pytest.fixture()
def open_stream() -> Iterator[Callable[..., EventStream]]:
    streams: list[EventStream] = []

    def opener(client: DeskClient, conversation: Optional[int] = None) -> EventStream:
        stream = EventStream(client, conversation)
        stream.wait_for(lambda kind, _: kind == "hello")
        streams.append(stream)
        return stream

    yield opener
    for stream in streams:
        stream.close()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)
