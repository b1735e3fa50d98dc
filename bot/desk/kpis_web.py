"""/desk/kpis (charts drawn by the locally served Chart.js) and /desk/api/kpis (the same numbers as JSON)."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from crm_adapter import CRM
from crm_adapter.analytics.complaint_kpis import current_week, dashboard
from crm_adapter.errors import CRMUnavailable, InvalidInput

from . import config
from .api import json_response
from .auth import MSG_DB_DOWN, json_error

CRM_KPI_KEY = web.AppKey("kpi_crm", CRM)
EVENTS_KEY = web.AppKey("kpi_events_url", str)


async def kpis_page(request: web.Request) -> web.Response:
    from .pages import render

    crm = request.app[CRM_KPI_KEY]
    return render(request, "kpis.html", {"week": request.query.get("week") or current_week(crm._now())})


async def kpis_api(request: web.Request) -> web.Response:
    crm = request.app[CRM_KPI_KEY]
    week = request.query.get("week") or current_week(crm._now())
    try:
        data: dict[str, Any] = await asyncio.to_thread(dashboard, crm, week, request.app[EVENTS_KEY] or None)
    except InvalidInput as exc:
        return json_error(400, str(exc))
    except CRMUnavailable:
        return json_error(503, MSG_DB_DOWN)
    return json_response(data)


def routes(app: web.Application, crm: CRM) -> None:
    app[CRM_KPI_KEY] = crm
    app[EVENTS_KEY] = config.from_env().events_url or ""
    app.router.add_get("/desk/kpis", kpis_page)
    app.router.add_get("/desk/api/kpis", kpis_api)
