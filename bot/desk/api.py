"""The desk's JSON API (used by the pages' scripts; every POST carries the CSRF token)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from crm_adapter import CRM
from crm_adapter.errors import CRMUnavailable, InvalidInput, NotFound
from crm_adapter.servicedesk import (
    MSG_AGENT_FULL,
    MSG_NOT_PENDING,
    MSG_NOT_YOURS,
    MSG_RESOLVED,
    ServiceDesk,
)

from . import customer360, flows, serialize
from .auth import DESK_KEY, MSG_DB_DOWN, json_error, session_of
from .feed import Hub
from .rasa_client import RasaClient, RasaUnavailable

log = logging.getLogger("kefu.desk.api")

CRM_KEY = web.AppKey("crm", CRM)
RASA_KEY = web.AppKey("rasa", RasaClient)
HUB_KEY = web.AppKey("hub", Hub)
CONFLICTS = {MSG_NOT_PENDING, MSG_NOT_YOURS, MSG_RESOLVED, MSG_AGENT_FULL}
MSG_NOT_FOUND = "没有找到这个会话。"
MSG_BAD_ID = "会话编号不正确。"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=serialize.dumps)


def guarded(handler: Handler) -> Handler:
    """The CRM's and Rasa's refusals as JSON errors with their Chinese message."""
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InvalidInput as exc:
            return json_error(409 if str(exc) in CONFLICTS else 400, str(exc))
        except NotFound:
            return json_error(404, MSG_NOT_FOUND)
        except CRMUnavailable:
            return json_error(503, MSG_DB_DOWN)
        except RasaUnavailable as exc:
            log.warning("Rasa refused a desk request: %s", exc.detail)
            return json_error(502, str(exc))

    wrapper.__name__ = handler.__name__
    return wrapper


#: Ids are INTEGER columns (32 bits on PostgreSQL): a larger one cannot exist, and
#: sending it to the database would be an error there, not a "not found".
MAX_ID = 2**31 - 1


def escalation_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["id"])
    except (KeyError, ValueError):
        raise InvalidInput(MSG_BAD_ID) from None
    if not 0 < value <= MAX_ID:
        raise InvalidInput(MSG_BAD_ID)
    return value


async def body(request: web.Request) -> dict[str, Any]:
    """JSON or form fields; anything else is an empty body."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise InvalidInput("请求格式不正确。") from None
        if not isinstance(data, dict):
            raise InvalidInput("请求格式不正确。")
        return data
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def field(data: dict[str, Any], name: str, required: bool = True) -> str:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("内容不能为空，且不超过2000字。" if name in ("text", "body") else f"缺少参数：{name}。")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"参数格式不正确：{name}。")
    return value


def _desk(request: web.Request) -> ServiceDesk:
    return request.app[DESK_KEY]


def _outcome(outcome: flows.Outcome) -> web.Response:
    return json_response({"ok": True, "conversation": serialize.conversation(outcome.conversation),
                              "warning": outcome.warning})


@guarded
async def me(request: web.Request) -> web.Response:
    session = session_of(request)
    return json_response({**serialize.staff(session.staff), "csrf_token": session.csrf_token,
                              "is_manager": session.staff.is_manager})


@guarded
async def queue(request: web.Request) -> web.Response:
    chats = await asyncio.to_thread(_desk(request).conversations)
    return json_response({"conversations": [serialize.conversation(c) for c in chats],
                              "me": session_of(request).staff.username})


@guarded
async def conversation(request: web.Request) -> web.Response:
    """The chat, its transcript from Rasa's tracker, the timeline (notes) and the 360 panel."""
    desk, eid = _desk(request), escalation_id(request)
    chat = await asyncio.to_thread(desk.conversation, eid)
    timeline = await asyncio.to_thread(desk.timeline, eid)
    transcript_error = None
    try:
        turns = [t.as_json() for t in await request.app[RASA_KEY].transcript(chat.sender_id)]
    except RasaUnavailable as exc:
        log.warning("transcript of escalation %s unavailable: %s", eid, exc.detail)
        turns, transcript_error = [], "聊天记录暂时无法读取：机器人服务暂时不可用。"
    panel = await asyncio.to_thread(customer360.panel, request.app[CRM_KEY], chat.customer_id, chat.customer_name)
    return json_response({
        "conversation": serialize.conversation(chat), "turns": turns, "transcript_error": transcript_error,
        "timeline": [serialize.timeline_event(e) for e in timeline], "customer": panel})


@guarded
async def claim(request: web.Request) -> web.Response:
    staff = session_of(request).staff
    return _outcome(await flows.claim(_desk(request), request.app[RASA_KEY], escalation_id(request), staff))


@guarded
async def reply(request: web.Request) -> web.Response:
    eid, data = escalation_id(request), await body(request)
    staff = session_of(request).staff
    return _outcome(await flows.reply(_desk(request), request.app[RASA_KEY], eid, staff, field(data, "text")))


@guarded
async def note(request: web.Request) -> web.Response:
    eid, data = escalation_id(request), await body(request)
    event = await asyncio.to_thread(_desk(request).add_note, eid, session_of(request).staff.username,
                                    field(data, "text"))
    return json_response({"ok": True, "note": serialize.timeline_event(event)})


@guarded
async def transfer(request: web.Request) -> web.Response:
    eid, data = escalation_id(request), await body(request)
    staff = session_of(request).staff
    chat = await asyncio.to_thread(_desk(request).transfer, eid, staff.username, field(data, "to"),
                                   field(data, "note", required=False) or None, staff.is_manager)
    return json_response({"ok": True, "conversation": serialize.conversation(chat)})


@guarded
async def resolve(request: web.Request) -> web.Response:
    eid, data = escalation_id(request), await body(request)
    staff = session_of(request).staff
    summary = field(data, "summary", required=False) or None
    return _outcome(await flows.resolve(_desk(request), request.app[RASA_KEY], eid, staff, summary))


@guarded
async def staff_list(request: web.Request) -> web.Response:
    people = await asyncio.to_thread(_desk(request).list_staff)
    return json_response({"staff": [serialize.staff(s) for s in people if s.active]})


@guarded
async def set_status(request: web.Request) -> web.Response:
    data = await body(request)
    view = await asyncio.to_thread(_desk(request).set_status, session_of(request).staff.username,
                                   field(data, "status"))
    return json_response({"ok": True, "staff": serialize.staff(view)})


@guarded
async def canned(request: web.Request) -> web.Response:
    replies = await asyncio.to_thread(_desk(request).canned_replies)
    return json_response({"canned": [serialize.canned(c) for c in replies]})


# -- managers ---------------------------------------------------------------

@guarded
async def overview(request: web.Request) -> web.Response:
    desk = _desk(request)
    stats = await asyncio.to_thread(desk.stats)
    people = await asyncio.to_thread(desk.list_staff)
    chats = await asyncio.to_thread(desk.conversations)
    return json_response({
        "stats": stats.__dict__, "staff": [serialize.staff(s) for s in people],
        "conversations": [serialize.conversation(c) for c in chats]})


@guarded
async def assign(request: web.Request) -> web.Response:
    data = await body(request)
    try:
        eid = int(field(data, "escalation_id"))
    except ValueError:
        raise InvalidInput(MSG_BAD_ID) from None
    desk, rasa = _desk(request), request.app[RASA_KEY]
    manager = session_of(request).staff.username
    chat = await asyncio.to_thread(desk.assign, eid, field(data, "to"), manager)
    people = {s.username: s for s in await asyncio.to_thread(desk.list_staff)}
    return _outcome(await flows.start_serving(rasa, chat, people[chat.assigned_to]))


@guarded
async def save_canned(request: web.Request) -> web.Response:
    data = await body(request)
    saved = await asyncio.to_thread(_desk(request).save_canned_reply, field(data, "code"), field(data, "title"),
                                    field(data, "body"))
    return json_response({"ok": True, "canned": serialize.canned(saved)})


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/desk/api/me", me)
    r.add_get("/desk/api/queue", queue)
    r.add_get("/desk/api/staff", staff_list)
    r.add_post("/desk/api/status", set_status)
    r.add_get("/desk/api/canned", canned)
    r.add_get("/desk/api/conversations/{id}", conversation)
    for action, handler in (("claim", claim), ("reply", reply), ("note", note), ("transfer", transfer),
                            ("resolve", resolve)):
        r.add_post(f"/desk/api/conversations/{{id}}/{action}", handler)
    r.add_get("/desk/api/manager/overview", overview)
    r.add_post("/desk/api/manager/assign", assign)
    r.add_post("/desk/api/manager/canned", save_canned)
