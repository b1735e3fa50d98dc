"""Desk records as JSON for the pages' scripts (times as ISO 8601 with offset)."""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from crm_adapter.servicedesk import CannedReply, Conversation, StaffView, TimelineEvent


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def conversation(c: Conversation) -> dict[str, Any]:
    return {k: _plain(v) for k, v in asdict(c).items()}


def staff(s: StaffView) -> dict[str, Any]:
    return {"username": s.username, "display_name": s.display_name, "role": s.role, "role_label": s.role_label,
            "status": s.status, "status_label": s.status_label, "max_open": s.max_open, "active": s.active,
            "last_seen_at": _plain(s.last_seen_at)}


def timeline_event(e: TimelineEvent) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "actor": e.actor, "body": e.body, "at": e.created_at.isoformat()}


def canned(c: CannedReply) -> dict[str, str]:
    return {"code": c.code, "title": c.title, "body": c.body}


def dumps(value: Any) -> str:
    """JSON with <, > and & escaped, so no browser could ever read customer text in it as markup.

    A lone surrogate (a client can send "\\udf6b" in JSON, and Rasa keeps it in
    the transcript) has no UTF-8 form, so the response could not be encoded
    and the agent got a 500 for the whole conversation; it is written as its
    JSON escape instead, which every JSON parser reads back as the same text.
    """
    text = (json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_LONE_SURROGATE = re.compile("[\\ud800-\\udfff]")
