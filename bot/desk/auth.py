"""Who may do what on the desk: the session cookie, CSRF, roles and the
security headers every response carries.

Why these choices: the cookie holds only a random token (the CRM keeps its
hash), HttpOnly so page scripts never see it, SameSite=Strict and a CSRF token
on every POST (compared in constant time) so another site cannot act for a
signed-in agent, and a Content-Security-Policy of ``default-src 'self'`` so
even a customer message that slipped past escaping could not run script or
reach another host.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web

from bot.http_body import drain_unread_body
from bot.forwarded import client_address, trusted_proxies
from bot.ratelimit import RateLimiter, login_failure_rate, token_buckets
from crm_adapter.errors import CRMUnavailable, InvalidInput
from crm_adapter.servicedesk import DeskSession, ServiceDesk

log = logging.getLogger("kefu.desk.auth")

COOKIE = "kefu_desk"
COOKIE_PATH = "/desk"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: Reachable without a session.
PUBLIC = ("/desk/login", "/desk/health", "/desk/static/")
MANAGER_PREFIXES = ("/desk/manager", "/desk/api/manager", "/desk/complaints", "/desk/kpis", "/desk/api/kpis",
                    "/desk/api/complaints")

MSG_LOGIN_REQUIRED = "请先登录。"
MSG_CSRF = "页面已过期或请求来源不可信，请刷新页面后重试。"
MSG_FORBIDDEN = "您没有权限访问此页面。"
MSG_DB_DOWN = "客服系统数据库暂时不可用，请稍后重试。"
MSG_TOO_MANY_LOGINS = "登录失败次数过多，请稍后再试。"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DESK_KEY = web.AppKey("desk", ServiceDesk)
COOKIE_SECURE_KEY = web.AppKey("cookie_secure", bool)
#: Failed logins per client address.  The CRM locks one account after five
#: failures; this stops one address from trying a few passwords on every account.
LOGIN_LIMITER_KEY = web.AppKey("login_limiter", RateLimiter)
TRUSTED_PROXIES_KEY = web.AppKey("trusted_proxies", tuple)


def is_api(request: web.Request) -> bool:
    return request.path.startswith(("/desk/api/", "/desk/events"))


def refuse(request: web.Request, status: int, message: str) -> web.Response:
    """JSON for the API and the event stream, a small Chinese page otherwise."""
    if is_api(request) or request.method != "GET":
        return web.json_response({"error": message}, status=status)
    return web.Response(status=status, text=f"{status} {message}", content_type="text/plain", charset="utf-8")


def session_of(request: web.Request) -> DeskSession:
    return request["desk_session"]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and aiohttp's own 404/405
        _secure(request, exc)
        await drain_unread_body(request, exc)
        raise
    _secure(request, response)
    await drain_unread_body(request, response)
    return response


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/desk/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    supplied: Optional[str] = request.headers.get(CSRF_HEADER)
    if supplied is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        supplied = value if isinstance(value, str) else None
    return supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode())


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path == "/desk" or not path.startswith("/desk/") or path.startswith(PUBLIC):
        return await handler(request)
    desk = request.app[DESK_KEY]
    try:
        session = await asyncio.to_thread(desk.session, request.cookies.get(COOKIE))
    except CRMUnavailable:
        return refuse(request, 503, MSG_DB_DOWN)
    if session is None:
        if is_api(request) or request.method != "GET":
            return web.json_response({"error": MSG_LOGIN_REQUIRED}, status=401)
        raise web.HTTPFound("/desk/login")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not await _csrf_ok(request, session.csrf_token):
        log.warning("refused a %s to %s without a valid CSRF token (staff %s)", request.method, path,
                    session.staff.id)
        return refuse(request, 403, MSG_CSRF)
    if path.startswith(MANAGER_PREFIXES) and not session.staff.is_manager:
        return refuse(request, 403, MSG_FORBIDDEN)
    request["desk_session"] = session
    return await handler(request)


def set_session_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=secure,
                        max_age=12 * 3600)


async def login_page(request: web.Request) -> web.Response:
    from .pages import render  # late: pages imports this module

    return render(request, "login.html", {"error": None, "username": ""})


async def login(request: web.Request) -> web.StreamResponse:
    from .pages import render

    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    desk = request.app[DESK_KEY]
    limiter: RateLimiter = request.app[LOGIN_LIMITER_KEY]
    address = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                             request.app[TRUSTED_PROXIES_KEY])
    if not limiter.available(address):
        log.warning("desk login refused: too many failed logins from one address")
        return render(request, "login.html", {"error": MSG_TOO_MANY_LOGINS, "username": username}, status=429)
    try:
        token, session = await asyncio.to_thread(desk.login, username, password)
    except InvalidInput as exc:
        limiter.take(address)
        return render(request, "login.html", {"error": str(exc), "username": username}, status=401)
    except CRMUnavailable:
        return render(request, "login.html", {"error": MSG_DB_DOWN, "username": username}, status=503)
    log.info("staff %s signed in", session.staff.id)
    response = web.HTTPFound("/desk/")
    set_session_cookie(response, token, request.app[COOKIE_SECURE_KEY])
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE)
    if token:
        await asyncio.to_thread(request.app[DESK_KEY].logout, token)
    response = web.HTTPFound("/desk/login")
    response.del_cookie(COOKIE, path=COOKIE_PATH)
    raise response


def routes(app: web.Application) -> None:
    app[LOGIN_LIMITER_KEY] = token_buckets(login_failure_rate(), "desk-login")
    app[TRUSTED_PROXIES_KEY] = trusted_proxies()
    app.router.add_get("/desk/login", login_page)
    app.router.add_post("/desk/login", login)
    app.router.add_post("/desk/logout", logout)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    from .serialize import dumps

    return web.json_response({"error": message, **extra}, status=status, dumps=dumps)
