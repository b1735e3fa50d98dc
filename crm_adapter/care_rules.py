"""The rules of proactive care as plain values and functions (no session), like
`crm_adapter.policy` and `crm_adapter.consent`: the settings and their
environment variables, what a campaign and a planned message are, the A/B
split and the quiet-hours arithmetic. `crm_adapter.care` applies them to the
database; docs/care.md explains them.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Iterable, Mapping, Optional, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import consent, policy
from .errors import InvalidInput
from .retention import RetentionOffer

#: Statuses that count against the weekly cap (a queued message will go out).
CAPPED_STATUSES = ("queued", "sending", "sent", "delivered", "deferred", "failed")
#: Rasa channel names -> the consent channel they count as.
CHAT_CONSENT_CHANNEL = {"wechat": "wechat", "web": "web", "socketio": "web", "rest": "web", "app": "app"}
#: Identity channels the scheduler can push into.
PUSH_CHANNELS = ("wechat", "web")
BATCH = 1000

MSG_CHANNEL = "联系渠道请选择微信、网页、短信或邮件。"
MSG_SEND_ID = "系统参数不正确（care_send_id），请稍后再试。"


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (env.get(name) or "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise InvalidInput(f"关怀配置不正确（{name}）。") from None
    if not low <= value <= high:
        raise InvalidInput(f"关怀配置不正确（{name}）。")
    return value


def _quiet_window(raw: str) -> tuple[time, time]:
    parts = [p for p in raw.replace("—", "-").replace("~", "-").split("-")]
    if len(parts) != 2:
        raise InvalidInput("关怀配置不正确（KEFU_CARE_QUIET_HOURS），例如 21:00-09:00。")
    return consent.wall_time(parts[0]), consent.wall_time(parts[1])


@dataclass(frozen=True)
class CareSettings:
    """The rules' parameters (README "Proactive care" lists the variables)."""

    weekly_cap: int = 2
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)
    max_attempts: int = 5
    retry_base: timedelta = timedelta(minutes=1)
    retry_max: timedelta = timedelta(hours=2)
    lease: timedelta = timedelta(minutes=2)
    reply_hours: int = 48
    convert_days: int = 7
    wechat_window: timedelta = timedelta(hours=48)
    web_live: timedelta = timedelta(minutes=5)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "CareSettings":
        env = os.environ if env is None else env
        start, end = _quiet_window(env.get("KEFU_CARE_QUIET_HOURS") or "21:00-09:00")
        return cls(
            weekly_cap=_env_int(env, "KEFU_CARE_WEEKLY_CAP", 2, 0, 100),
            quiet_start=start,
            quiet_end=end,
            max_attempts=_env_int(env, "KEFU_CARE_MAX_ATTEMPTS", 5, 1, 100),
            retry_base=timedelta(seconds=_env_int(env, "KEFU_CARE_RETRY_SECONDS", 60, 1, 86400)),
            lease=timedelta(seconds=_env_int(env, "KEFU_CARE_LEASE_SECONDS", 120, 1, 3600)),
            reply_hours=_env_int(env, "KEFU_CARE_REPLY_HOURS", 48, 1, 24 * 30),
            convert_days=_env_int(env, "KEFU_CARE_CONVERT_DAYS", 7, 1, 365),
            web_live=timedelta(minutes=_env_int(env, "KEFU_CARE_WEB_LIVE_MINUTES", 5, 1, 1440)),
        )


@dataclass(frozen=True)
class CampaignRules:
    """What the rules need to know about a campaign (the scheduler's YAML has the rest)."""

    name: str
    audience: str
    purpose: str
    params: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[str, ...] = ("A",)
    valid_days: int = 7
    coupon: Optional[RetentionOffer] = None
    coupon_tiers: tuple[str, ...] = ()  # empty: every customer of the audience gets the coupon


@dataclass(frozen=True)
class Planned:
    customer_id: int
    occasion: str
    variant: str
    channel: Optional[str]
    context: dict[str, Any]


@dataclass
class PlanSummary:
    candidates: int = 0
    planned: int = 0
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "planned": self.planned, "skipped": dict(self.skipped)}


@dataclass(frozen=True)
class SendTask:
    """A claimed row: everything a sender needs, plus the claim token that proves the lease."""

    id: int
    campaign: str
    customer_id: int
    occasion: str
    variant: str
    purpose: str
    context: dict[str, Any]
    text: Optional[str]
    coupon_code: Optional[str]
    attempts: int
    token: str


@dataclass(frozen=True)
class Route:
    """Where a claimed message goes now: ``send`` (channel + address), ``defer`` to the
    next chat, ``later`` (quiet hours, at ``retry_at``) or ``skip`` (``reason``)."""

    action: str
    channel: Optional[str] = None
    address: Optional[str] = None
    reason: Optional[str] = None
    retry_at: Optional[datetime] = None


@dataclass(frozen=True)
class CareMessage:
    send_id: int
    campaign: str
    text: str
    context: dict[str, Any]


def variant_for(campaign: str, customer_id: int, variants: Sequence[str]) -> str:
    """A stable split: the same customer always gets the same variant of a campaign."""
    if len(variants) <= 1:
        return variants[0] if variants else "A"
    digest = hashlib.sha256(f"{campaign}:{customer_id}".encode()).digest()
    return variants[int.from_bytes(digest[:8], "big") % len(variants)]


def next_allowed(at: datetime, zone: str, windows: Iterable[tuple[time, time]]) -> Optional[datetime]:
    """None when ``at`` (naive UTC) is outside every quiet window in ``zone``;
    otherwise the first moment (naive UTC) outside all of them."""
    windows = list(windows)
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):  # a bad stored zone must not open the night
        tz = ZoneInfo(consent.DEFAULT_TIMEZONE)
    local = consent.moment(at).astimezone(tz)
    moved = False
    for _ in range(2 * len(windows) + 1):
        inside = [(s, e) for s, e in windows if consent.in_quiet_hours(local.time(), s, e)]
        if not inside:
            return policy.utc_naive(local) if moved else None
        start, end = inside[0]
        candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if candidate <= local:
            candidate += timedelta(days=1)
        local = candidate.replace(tzinfo=None).replace(tzinfo=tz)  # re-resolve the offset (DST)
        moved = True
    return policy.utc_naive(local)
