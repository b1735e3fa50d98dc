"""Managers' complaint log on the desk: list, detail, audited actions, export.

Server-rendered (Jinja2, autoescaped) with plain HTML forms, so the log works
without page scripts and every customer text reaches the browser as inert
text.  Actions POST with the session's CSRF token and redirect back
(POST/redirect/GET), so a reload never repeats one.  The data side is
`crm_adapter.complaint_log`; this module only turns requests into its calls.
"""
from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import tempfile
from typing import Any, Optional
from urllib.parse import quote, urlencode

from aiohttp import web

from crm_adapter import CRM, complaint_search
from crm_adapter.complaint_log import (
    CHANNEL_LABELS,
    MAX_PAGE_SIZE,
    TIER_LABELS,
    ComplaintFilter,
    ComplaintLog,
    ComplaintRow,
    parse_filter,
)
from crm_adapter.errors import CRMUnavailable, InvalidInput, NotFound
from crm_adapter.models import COMPLAINT_CATEGORIES, COMPLAINT_STATUSES, SEVERITIES
from crm_adapter.views import CHINA_TZ, COMPLAINT_CATEGORY_LABELS, COMPLAINT_STATUS_LABELS, SEVERITY_LABELS

from . import config, customer360
from .api import CRM_KEY, RASA_KEY
from .auth import CSRF_FIELD, DESK_KEY, MSG_DB_DOWN, session_of
from .rasa_client import RasaUnavailable

log = logging.getLogger("kefu.desk.complaints")

LOG_KEY = web.AppKey("complaint_log", ComplaintLog)
MSG_NOT_FOUND = "没有找到这条投诉。"
EXPORT_COLUMNS = (
    ("ticket_number", "投诉单号"), ("created_at", "创建时间"), ("category_label", "类别"),
    ("severity_label", "严重程度"), ("status_label", "状态"), ("channel", "渠道"),
    ("customer_name", "客户"), ("customer_tier", "客户分层"), ("contact_phone", "联系电话"),
    ("assigned_to", "负责人"), ("sla_due_at", "SLA截止"), ("sla_breached", "SLA超时"),
    ("first_response_at", "首次响应"), ("resolved_at", "解决时间"), ("reopened_count", "重开次数"),
    ("description", "投诉内容"),
)
STATUS_CHOICES = (("open", "已受理，待处理"), ("pending", "处理中"), ("resolved", "已解决"),
                  ("closed", "关闭（需原因）"), ("rejected", "驳回（需原因）"))


def _log(request: web.Request) -> ComplaintLog:
    return request.app[LOG_KEY]


def _pii(request: web.Request) -> bool:
    return session_of(request).staff.pii_access


def _cell(row: ComplaintRow, name: str) -> Any:
    value = getattr(row, name)
    if name == "sla_breached":
        return "是" if value else "否"
    if name == "customer_tier":
        return TIER_LABELS.get(value or "", "")
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else value


def _safe_cell(value: Any) -> Any:
    """Customer text that a spreadsheet would run as a formula is written as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _options() -> dict[str, Any]:
    return {
        "statuses": [(s, COMPLAINT_STATUS_LABELS[s]) for s in COMPLAINT_STATUSES],
        "categories": [(c, COMPLAINT_CATEGORY_LABELS[c]) for c in COMPLAINT_CATEGORIES],
        "severities": [(s, SEVERITY_LABELS[s]) for s in SEVERITIES],
        "tiers": list(TIER_LABELS.items()),
        "channels": list(CHANNEL_LABELS.items()),
    }


def _sort_link(f: ComplaintFilter, column: str) -> str:
    params = f.as_params()
    params["sort"] = column
    params["dir"] = "asc" if f.sort == column and f.descending else "desc"
    return "/desk/complaints?" + urlencode(params)


async def list_page(request: web.Request) -> web.Response:
    from .pages import render

    context: dict[str, Any] = {"options": _options(), "error": None, "rows": [], "next_url": None,
                               "count": None, "more": False, "f": ComplaintFilter(), "params": {}}
    try:
        f = parse_filter(request.query)
        cursor = request.query.get("after") or None
        page = await asyncio.to_thread(_log(request).page, f, pii=_pii(request), cursor=cursor)
        count, more = await asyncio.to_thread(_log(request).count, f)
    except InvalidInput as exc:
        context["error"] = str(exc)
        return _render_list(request, context, status=400)
    except CRMUnavailable:
        return render(request, "error.html", {"message": MSG_DB_DOWN}, status=503)
    params = f.as_params()
    context.update(f=f, params=params, rows=page.rows, count=count, more=more,
                   export_query=urlencode(params),
                   next_url=("/desk/complaints?" + urlencode({**params, "after": page.next_cursor}))
                   if page.next_cursor else None,
                   sort_links={c: _sort_link(f, c) for c in ("created", "sla")})
    return _render_list(request, context)


def _render_list(request: web.Request, context: dict[str, Any], status: int = 200) -> web.Response:
    from .pages import render

    context.setdefault("sort_links", {c: _sort_link(ComplaintFilter(), c) for c in ("created", "sla")})
    context.setdefault("export_query", "")
    return render(request, "complaints.html", context, status=status)


async def detail_page(request: web.Request, error: Optional[str] = None, status: int = 200) -> web.Response:
    from .pages import render

    ticket = request.match_info["ticket"]
    try:
        detail = await asyncio.to_thread(_log(request).detail, ticket, pii=_pii(request))
        staff = [s for s in await asyncio.to_thread(request.app[DESK_KEY].list_staff) if s.active]
        crm: CRM = request.app[CRM_KEY]
        customer = await asyncio.to_thread(customer360.panel, crm, detail.row.customer_id,
                                           detail.row.customer_name)
    except NotFound:
        raise web.HTTPNotFound(text=MSG_NOT_FOUND) from None
    except CRMUnavailable:
        return render(request, "error.html", {"message": MSG_DB_DOWN}, status=503)
    turns, transcript_error = [], None
    try:
        turns = await request.app[RASA_KEY].transcript(detail.sender_id)
    except RasaUnavailable as exc:
        log.warning("transcript of complaint %s unavailable: %s", detail.row.id, exc.detail)
        transcript_error = "聊天记录暂时无法读取：机器人服务暂时不可用。"
    return render(request, "complaint.html", {
        "d": detail, "c": detail.row, "staff": staff, "customer": customer,
        "turns": [{"turn": t, "local": t.at.astimezone(CHINA_TZ)} for t in turns],
        "transcript_error": transcript_error, "error": error, "status_choices": STATUS_CHOICES,
        "tier_labels": TIER_LABELS, "csrf_field": CSRF_FIELD}, status=status)


async def action(request: web.Request) -> web.StreamResponse:
    """assign / status / note / reopen from the detail page's forms."""
    ticket, name = request.match_info["ticket"], request.match_info["action"]
    form = await request.post()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    by = session_of(request).staff.username
    complaint_log = _log(request)
    try:
        if name == "assign":
            await asyncio.to_thread(complaint_log.assign, ticket, data.get("to", ""), by)
        elif name == "status":
            await asyncio.to_thread(complaint_log.change_status, ticket, data.get("status", ""), by,
                                    data.get("reason"))
        elif name == "note":
            await asyncio.to_thread(complaint_log.add_note, ticket, by, data.get("text", ""))
        elif name == "reopen":
            await asyncio.to_thread(complaint_log.reopen, ticket, by, data.get("reason", ""))
        else:
            raise web.HTTPNotFound(text="没有这个操作。")
    except InvalidInput as exc:
        return await detail_page(request, error=str(exc), status=400)
    except NotFound:
        raise web.HTTPNotFound(text=MSG_NOT_FOUND) from None
    except CRMUnavailable:
        from .pages import render

        return render(request, "error.html", {"message": MSG_DB_DOWN}, status=503)
    log.info("staff %s: complaint %s %s", session_of(request).staff.id, ticket, name)
    raise web.HTTPSeeOther(f"/desk/complaints/{quote(ticket, safe='')}?done={quote(name)}")


async def _batches(request: web.Request, f: ComplaintFilter):  # type: ignore[no-untyped-def]
    """Pages of the filtered log, each read in a worker thread: bounded memory however long."""
    cursor: Optional[str] = None
    pii = _pii(request)
    while True:
        page = await asyncio.to_thread(_log(request).page, f, pii=pii, cursor=cursor, size=MAX_PAGE_SIZE)
        yield page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _parse_or_400(request: web.Request) -> ComplaintFilter:
    try:
        return parse_filter(request.query)
    except InvalidInput as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def export_csv(request: web.Request) -> web.StreamResponse:
    """UTF-8 with a BOM, so Excel opens the Chinese correctly; streamed page by page."""
    f = _parse_or_400(request)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": "attachment; filename=\"complaints.csv\"; filename*=UTF-8''%E6%8A%95%E8%AF%89.csv"})
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([label for _, label in EXPORT_COLUMNS])
    rows = 0
    async for batch in _batches(request, f):
        for row in batch:
            writer.writerow([_safe_cell(_cell(row, name)) for name, _ in EXPORT_COLUMNS])
        rows += len(batch)
        await response.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
    log.info("staff %s exported %s complaints (csv, pii %s)", session_of(request).staff.id, rows, _pii(request))
    await response.write_eof()
    return response


async def export_xlsx(request: web.Request) -> web.StreamResponse:
    """openpyxl's write-only workbook spools rows to a temporary file, then that file is streamed."""
    from openpyxl import Workbook

    f = _parse_or_400(request)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("投诉")
    sheet.append([label for _, label in EXPORT_COLUMNS])
    rows = 0
    async for batch in _batches(request, f):
        for row in batch:
            sheet.append([_safe_cell(_cell(row, name)) for name, _ in EXPORT_COLUMNS])
        rows += len(batch)
    with tempfile.TemporaryFile(suffix=".xlsx") as spool:
        await asyncio.to_thread(workbook.save, spool)
        spool.seek(0)
        response = web.StreamResponse(headers={
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "Content-Disposition": "attachment; filename=\"complaints.xlsx\""})
        await response.prepare(request)
        while True:
            chunk = await asyncio.to_thread(spool.read, 256 * 1024)
            if not chunk:
                break
            await response.write(chunk)
    log.info("staff %s exported %s complaints (xlsx, pii %s)", session_of(request).staff.id, rows, _pii(request))
    await response.write_eof()
    return response


async def _index_forever(crm: CRM, events_url: Optional[str], every_s: float) -> None:
    """Keep the search index current: new complaints, and transcripts of the open ones.

    The first pass waits a few seconds, so start-up (the live feed finding its
    place in the event table) is not slowed by loading jieba's dictionary.
    """
    await asyncio.sleep(min(every_s, 5.0))
    while True:
        try:
            await asyncio.to_thread(complaint_search.refresh, crm.engine, crm._now(), events_url)
        except Exception as exc:  # noqa: BLE001 - a failed pass is retried next time, the desk stays up
            log.warning("complaint search index refresh failed: %s", type(exc).__name__)
        await asyncio.sleep(every_s)


def routes(app: web.Application, crm: CRM) -> None:
    app[LOG_KEY] = ComplaintLog(crm)
    every_s = float(os.environ.get("KEFU_COMPLAINT_INDEX_EVERY") or 600)
    tasks: list[asyncio.Task[None]] = []

    async def start(app: web.Application) -> None:
        if every_s > 0:
            tasks.append(asyncio.create_task(_index_forever(crm, config.from_env().events_url, every_s)))

    async def stop(app: web.Application) -> None:
        for task in tasks:
            task.cancel()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    r = app.router
    r.add_get("/desk/complaints", list_page)
    r.add_get("/desk/complaints/export.csv", export_csv)
    r.add_get("/desk/complaints/export.xlsx", export_xlsx)
    r.add_get("/desk/complaints/{ticket}", detail_page)
    r.add_post("/desk/complaints/{ticket}/{action}", action)
