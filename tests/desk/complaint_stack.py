"""A desk serving the complaint log against a real SQLite CRM, with a small
real HTTP server standing in for Rasa's tracker endpoint (no model needed).

Everything runs on 127.0.0.1 in a background thread with its own event loop.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web

from bot.desk.config import DeskConfig
from bot.desk.server import make_app
from crm_adapter import CRM

PASSWORD = "correct-horse-battery"
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>'; DROP TABLE complaints; --"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracker_app(trackers: dict[str, list[dict[str, Any]]]) -> web.Application:
    async def tracker(request: web.Request) -> web.Response:
        return web.json_response({"sender_id": request.match_info["sender"],
                                  "events": trackers.get(request.match_info["sender"], [])})

    app = web.Application()
    app.router.add_get("/conversations/{sender}/tracker", tracker)
    return app


@dataclass
class ComplaintStack:
    crm: CRM
    url: str
    trackers: dict[str, list[dict[str, Any]]]


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


@pytest.fixture()
def complaint_stack(tmp_path: Path) -> Iterator[ComplaintStack]:
    crm_url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    crm = CRM(crm_url)
    crm.create_schema()
    trackers: dict[str, list[dict[str, Any]]] = {}
    rasa_port, desk_port = free_port(), free_port()
    cfg = DeskConfig(crm_url=crm_url, rasa_url=f"http://127.0.0.1:{rasa_port}", rasa_jwt_secret="t", events_url=None)
    loop = _Loop()
    runners: list[web.AppRunner] = []

    async def start() -> None:
        for app, port in ((tracker_app(trackers), rasa_port), (make_app(cfg), desk_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)

    loop.run(start())
    try:
        yield ComplaintStack(crm, f"http://127.0.0.1:{desk_port}", trackers)
    finally:
        async def stop() -> None:
            for runner in reversed(runners):
                await runner.cleanup()

        loop.run(stop())
        loop.loop.call_soon_threadsafe(loop.loop.stop)
        loop.thread.join(5)
        crm.dispose()


def user_event(text: str, ts: float) -> dict[str, Any]:
    return {"event": "user", "text": text, "timestamp": ts}


def bot_event(text: str, ts: float, agent: str = "") -> dict[str, Any]:
    metadata = {"agent": agent, "agent_name": "王经理"} if agent else {}
    return {"event": "bot", "text": text, "timestamp": ts, "metadata": metadata}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
