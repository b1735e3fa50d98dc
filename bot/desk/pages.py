"""Server-rendered pages (Jinja2, autoescaped): login, the agent desk, a
conversation, the manager view.  Scripts fill in live parts with textContent."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import jinja2
from aiohttp import web

from crm_adapter.errors import CRMUnavailable, InvalidInput, NotFound
from crm_adapter.servicedesk import CHINA_TZ, TimelineEvent

from . import customer360
from .api import CRM_KEY, MAX_ID, RASA_KEY
from .auth import DESK_KEY, MSG_DB_DOWN, session_of
from .rasa_client import RasaUnavailable, Turn

HERE = Path(__file__).resolve().parent
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                               autoescape=True, undefined=jinja2.StrictUndefined)


def _clock(value: Any) -> str:
    return value.strftime("%m-%d %H:%M") if value is not None else ""


TEMPLATES.filters["clock"] = _clock


def render(request: web.Request, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
    session = request.get("desk_session")
    text = TEMPLATES.get_template(name).render(session=session, **context)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a client can send "\ud800" in JSON and Rasa keeps it in the
        # transcript) has no UTF-8 form: shown as "?" rather than failing the page.
        body = text.encode("utf-8", "replace")
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8")


async def desk_page(request: web.Request) -> web.Response:
    return await _desk(request, None)


async def conversation_page(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise web.HTTPNotFound(text="没有找到这个会话。")
    return await _desk(request, int(raw))


async def _desk(request: web.Request, escalation_id: Optional[int]) -> web.Response:
    desk = request.app[DESK_KEY]
    context: dict[str, Any] = {"chat": None, "items": [], "customer": None, "transcript_error": None}
    try:
        queue = await asyncio.to_thread(desk.conversations)
        if escalation_id is not None:
            chat = await asyncio.to_thread(desk.conversation, escalation_id)
            context["chat"] = chat
            notes = [e for e in await asyncio.to_thread(desk.timeline, escalation_id) if e.kind == "note"]
            context["customer"] = await asyncio.to_thread(customer360.panel, request.app[CRM_KEY],
                                                          chat.customer_id, chat.customer_name)
            turns = []
            try:
                turns = await request.app[RASA_KEY].transcript(chat.sender_id)
            except RasaUnavailable:
                context["transcript_error"] = "聊天记录暂时无法读取：机器人服务暂时不可用。"
            context["items"] = _merged(turns, notes)
    except NotFound:
        raise web.HTTPNotFound(text="没有找到这个会话。") from None
    except (CRMUnavailable, InvalidInput):
        return render(request, "error.html", {"message": MSG_DB_DOWN}, status=503)
    context["queue"] = queue
    context["me"] = session_of(request).staff
    return render(request, "desk.html", context)


def _merged(turns: list[Turn], notes: list[TimelineEvent]) -> list[dict[str, Any]]:
    """Customer, bot and agent turns with the internal notes, in time order."""
    items = [{"kind": "turn", "turn": t, "local": t.at.astimezone(CHINA_TZ), "at": t.at} for t in turns]
    items += [{"kind": "note", "note": n, "at": n.created_at} for n in notes]
    return sorted(items, key=lambda item: item["at"])


async def manager_page(request: web.Request) -> web.Response:
    return render(request, "manager.html", {"me": session_of(request).staff})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def routes(app: web.Application) -> None:
    app.router.add_get("/desk/health", health)
    app.router.add_get("/favicon.ico", lambda r: _no_icon())
    app.router.add_get("/desk/", desk_page)
    app.router.add_get("/desk", lambda r: _redirect())
    app.router.add_get("/desk/c/{id}", conversation_page)
    app.router.add_get("/desk/manager", manager_page)
    app.router.add_static("/desk/static/", HERE / "static", show_index=False, follow_symlinks=False)


async def _no_icon() -> web.Response:
    return web.Response(status=204)


async def _redirect() -> web.Response:
    raise web.HTTPFound("/desk/")
