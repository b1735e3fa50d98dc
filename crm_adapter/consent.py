"""Consent and quiet-hour rules, as plain functions (no session), like `policy`.

个人信息保护法 in practice, as the shop applies it:

* marketing needs consent, per channel: no decision on record means "no";
* service messages (order shipped, refund done, a complaint's answer) are
  part of performing the contract and need no opt-in, but a customer may
  still refuse them on a channel, and that refusal is honoured;
* a decision for channel "all" counts for every channel; for one (channel,
  purpose) the newest decision naming that channel or "all" wins, so
  「退订」 (all, marketing, no) followed by a new 「短信可以发」 (sms,
  marketing, yes) leaves only SMS open;
* nobody is contacted in their quiet hours, local time, whatever the purpose.
  Quiet hours may cross midnight (22:00-08:00); start == end means none.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timezone
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidInput
from .models import CONSENT_CHANNELS, CONSENT_PURPOSES, CONTACT_CHANNELS

DEFAULT_QUIET_HOURS = (time(22, 0), time(8, 0))
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: Without a decision on record: service yes (contract), marketing no (opt-in).
DEFAULT_GRANTED = {"service": True, "marketing": False}

MSG_CHANNEL = "联系渠道请选择微信、网页、短信、邮件或App。"
MSG_PURPOSE = "系统参数不正确（purpose），请稍后再试。"
MSG_GRANTED = "系统参数不正确（granted），请稍后再试。"
MSG_TIME = "时间请用24小时制，例如 22:00 或 8:30。"
MSG_TIMEZONE = "时区不正确，请使用例如 Asia/Shanghai 这样的时区名称。"
MSG_MOMENT = "系统参数不正确（at），请稍后再试。"

_TIME_RE = re.compile(r"^([01]?[0-9]|2[0-3])\s*[:：点]\s*([0-5][0-9])?\s*分?$")


@dataclass(frozen=True)
class Decision:
    """One consent row, as far as the rules care."""

    channel: str
    purpose: str
    granted: bool
    created_at: datetime
    row_id: int = 0  # breaks ties between rows of the same instant


def channel(value: Any, *, allow_all: bool) -> str:
    text = unicodedata.normalize("NFKC", str(value or "")).strip().lower()
    allowed = CONSENT_CHANNELS if allow_all else CONTACT_CHANNELS
    if text not in allowed:
        raise InvalidInput(MSG_CHANNEL)
    return text


def purpose(value: Any) -> str:
    text = unicodedata.normalize("NFKC", str(value or "")).strip().lower()
    if text not in CONSENT_PURPOSES:
        raise InvalidInput(MSG_PURPOSE)
    return text


def granted(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(MSG_GRANTED)
    return value


def wall_time(value: Any) -> time:
    """``time``, "22:00", "8:30", "２２：００" or "22点" -> a time of day (minutes only)."""
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    match = _TIME_RE.match(unicodedata.normalize("NFKC", str(value or "")).strip())
    if not match:
        raise InvalidInput(MSG_TIME)
    return time(int(match.group(1)), int(match.group(2) or 0))


def zone(value: Any) -> str:
    name = str(value or "").strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(MSG_TIMEZONE) from None
    return name


def moment(value: Any) -> datetime:
    """An aware moment; a naive one is taken as UTC, like the CRM's clock."""
    if not isinstance(value, datetime):
        raise InvalidInput(MSG_MOMENT)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def current(decisions: Iterable[Decision], channel_name: str, purpose_name: str) -> Optional[Decision]:
    """The decision in force for one contact channel and purpose, or None."""
    relevant = [
        d for d in decisions
        if d.purpose == purpose_name and d.channel in (channel_name, "all")
    ]
    return max(relevant, key=lambda d: (d.created_at, d.row_id), default=None)


def is_granted(decision: Optional[Decision], purpose_name: str) -> bool:
    return decision.granted if decision is not None else DEFAULT_GRANTED[purpose_name]


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Whether ``local`` falls in [start, end), where the span may cross midnight."""
    local = local.replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def local_time(at: datetime, timezone_name: str) -> time:
    try:
        tz = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo(DEFAULT_TIMEZONE)  # a bad stored zone must not open the night
    return moment(at).astimezone(tz).time()
