"""The desk's configuration, read once from the environment at start-up."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from sqlalchemy.engine import URL

from bot import rasa_auth

TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class DeskConfig:
    crm_url: str
    rasa_url: str
    rasa_jwt_secret: str  # signs the desk's calls to Rasa's HTTP API (bot/rasa_auth.py)
    events_url: Optional[str]  # SQLAlchemy URL of Rasa's SQL event broker table, None: no live messages
    auto_assign: bool = False
    cookie_secure: bool = False
    poll_interval_s: float = 0.5
    heartbeat_s: float = 30.0
    auto_assign_s: float = 3.0


def events_url(dialect: str, db: str) -> Optional[str]:
    """The URL Rasa's `SQLEventBroker` builds from ``dialect`` and ``db`` (endpoints.yml)."""
    if not db:
        return None
    return URL.create(drivername=dialect or "sqlite", database=db).render_as_string(hide_password=False)


def from_env(env: Optional[Mapping[str, str]] = None) -> DeskConfig:
    env = os.environ if env is None else env
    return DeskConfig(
        crm_url=env.get("KEFU_CRM_URL") or "sqlite:///var/crm.sqlite3",
        rasa_url=(env.get("KEFU_RASA_URL") or "http://127.0.0.1:5005").rstrip("/"),
        rasa_jwt_secret=env.get(rasa_auth.SECRET_ENV, ""),
        events_url=events_url(env.get("KEFU_TRACKER_DIALECT", "sqlite"), env.get("KEFU_EVENTS_DB", "")),
        auto_assign=env.get("KEFU_DESK_AUTO_ASSIGN", "").strip().lower() in TRUE,
        cookie_secure=env.get("KEFU_DESK_COOKIE_SECURE", "").strip().lower() in TRUE,
    )
