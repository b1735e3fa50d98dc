"""`/desk/events`: server-sent events for one desk page.

``?conversation=ID`` also subscribes to that chat's messages and timeline.
While the stream is open the agent counts as present (heartbeats from the
feed); EventSource reconnects by itself and the page then re-fetches.
"""
from __future__ import annotations

import asyncio

import logging
from typing import Any, Optional

from aiohttp import web

from .api import HUB_KEY
from .auth import DESK_KEY, session_of
from .serialize import dumps

log = logging.getLogger("kefu.desk.stream")

KEEPALIVE_S = 15.0


def _frame(event: dict[str, Any]) -> bytes:
    data = dumps(event)
    return f"event: {event.get('type', 'message')}\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    conversation: Optional[int] = None
    raw = request.query.get("conversation", "")
    if raw.isdigit():
        conversation = int(raw)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    hub = request.app[HUB_KEY]
    subscriber = hub.add(session.staff.username, conversation)
    try:
        await asyncio.to_thread(request.app[DESK_KEY].heartbeat, session.staff.username)
        await response.write(b"retry: 2000\n\n" + _frame({"type": "hello", "conversation": conversation}))
        while True:
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if event is None:  # the desk is shutting down
                break
            await response.write(_frame(event))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.remove(subscriber)
    return response


def routes(app: web.Application) -> None:
    app.router.add_get("/desk/events", events)
