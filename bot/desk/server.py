"""The agent desk web app: `python -m bot.desk.server --host H --port P`.

bot.run.Stack starts it next to Rasa on KEFU_DESK_PORT (default 8090).
Environment: KEFU_CRM_URL, KEFU_RASA_URL, KEFU_RASA_JWT_SECRET, KEFU_EVENTS_DB,
KEFU_TRACKER_DIALECT, KEFU_DESK_AUTO_ASSIGN, KEFU_DESK_COOKIE_SECURE (see
README "Desk").  It keeps no state of its own: sessions, the queue and the
timeline are in the CRM, the transcript in Rasa's tracker.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Optional

from aiohttp import web

from crm_adapter import CRM

from . import api, auth, complaints, config, kpis_web, pages, stream
from .feed import Feed, Hub
from .rasa_client import RasaClient

logger = logging.getLogger("kefu.desk")
FEED_KEY = web.AppKey("feed", Feed)


def make_app(cfg: config.DeskConfig) -> web.Application:
    crm = CRM(cfg.crm_url)
    app = web.Application(middlewares=[auth.security_headers, auth.require_session])
    app[auth.DESK_KEY] = crm.desk
    app[auth.COOKIE_SECURE_KEY] = cfg.cookie_secure
    app[api.CRM_KEY] = crm
    app[api.RASA_KEY] = RasaClient(cfg.rasa_url, cfg.rasa_jwt_secret)
    app[api.HUB_KEY] = Hub()
    app[FEED_KEY] = Feed(cfg, crm.desk, app[api.RASA_KEY], app[api.HUB_KEY])
    auth.routes(app)
    pages.routes(app)
    api.routes(app)
    complaints.routes(app, crm)
    kpis_web.routes(app, crm)
    stream.routes(app)

    async def on_startup(app: web.Application) -> None:
        await app[FEED_KEY].start()

    async def on_shutdown(app: web.Application) -> None:
        await app[FEED_KEY].stop()  # also ends the open event streams

    async def on_cleanup(app: web.Application) -> None:
        await app[api.RASA_KEY].close()
        crm.dispose()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Serve Kefu's agent desk.")
    parser.add_argument("--host", default=os.environ.get("KEFU_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KEFU_DESK_PORT") or 8090))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config.from_env()
    if not cfg.rasa_jwt_secret:
        logger.warning("KEFU_RASA_JWT_SECRET is not set: Rasa will refuse the desk's requests")
    logger.info("desk on http://%s:%s/desk/ (auto-assign %s)", args.host, args.port,
                "on" if cfg.auto_assign else "off")
    web.run_app(make_app(cfg), host=args.host, port=args.port, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=2.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
