"""Serves the chat widget and a demo shop page: `python -m bot.web.server`.

bot.run.Stack starts it next to Rasa on KEFU_WEB_PORT (default 8080).  It is
deliberately small and stateless: static files, two pages and a health check.

* ``/``          a demo shop page (小K商城) with the widget embedded as a shop
                 would do it.  When KEFU_WEB_SECRET is set it signs a fresh
                 token for the demo customer 张伟, as the shop's backend would
                 for its logged-in user; ``/?guest=1`` is the same page for an
                 anonymous visitor.
* ``/widget/``   the widget alone, full page (anonymous): a link to send people.
* ``/widget/static/...``  kefu-widget.js / .css and the vendored socket.io client.

Every page carries a Content-Security-Policy that lets the browser talk to
this server and to the Rasa server only: the widget makes no request to any
outside host, and a bot message cannot make it load one.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from aiohttp import web

from bot.channels import web_token
from bot.http_body import drain_unread_body
from crm_adapter.seed import DEMO_WEB_UID

logger = logging.getLogger("kefu.web")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGES = HERE / "pages"
TOKEN_TTL_S = 3600


def _ws_origin(http_origin: str) -> str:
    parts = urlsplit(http_origin)
    return f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"


def content_security_policy(socket_url: str) -> str:
    rasa = f"{urlsplit(socket_url).scheme}://{urlsplit(socket_url).netloc}"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {rasa} {_ws_origin(rasa)}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'self'")


def _page(name: str, config: dict[str, Any]) -> str:
    """A page from pages/ with the widget's configuration as inert JSON (not script).

    A <script type="application/json"> body is raw text to the HTML parser, so
    the only danger is a "</script>" inside a value: every "<" is escaped.
    """
    payload = json.dumps(config, ensure_ascii=False).replace("<", "\\u003c")
    return (PAGES / name).read_text(encoding="utf-8").replace("{{CONFIG}}", payload)


def make_app(socket_url: str, secret: str = "", demo_uid: str = DEMO_WEB_UID) -> web.Application:
    """The aiohttp application (tests start it in-process; run() serves it)."""
    csp = content_security_policy(socket_url)

    @web.middleware
    async def headers(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404/405: a body nobody reads must not stay on the connection
            await drain_unread_body(request, exc)
            raise
        await drain_unread_body(request, response)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    async def host_page(request: web.Request) -> web.Response:
        guest = request.query.get("guest") == "1"
        token = web_token.sign(demo_uid, secret, TOKEN_TTL_S) if secret and not guest else None
        text = _page("host.html", {"socketUrl": socket_url, "token": token, "open": False})
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def widget_page(request: web.Request) -> web.Response:
        text = _page("widget.html", {"socketUrl": socket_url, "token": None, "open": True, "fullPage": True})
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[headers])
    app.router.add_get("/", host_page)
    app.router.add_get("/widget/", widget_page)
    app.router.add_get("/widget", lambda r: web.HTTPFound("/widget/"))
    app.router.add_get("/health", health)
    app.router.add_static("/widget/static/", STATIC, show_index=False, follow_symlinks=False)
    return app


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Serve Kefu's chat widget and demo shop page.")
    parser.add_argument("--host", default=os.environ.get("KEFU_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KEFU_WEB_PORT") or 8080))
    parser.add_argument("--socket-url", default=os.environ.get("KEFU_RASA_URL", "http://127.0.0.1:5005"),
                        help="where browsers reach the Rasa server's socket.io endpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    secret = os.environ.get("KEFU_WEB_SECRET", "")
    web_token.check_secret(secret)
    if not secret:
        logger.info("KEFU_WEB_SECRET not set: the demo page's visitor is anonymous")
    web.run_app(make_app(args.socket_url, secret), host=args.host, port=args.port,
                print=None, access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
