"""The shop's rules, in one place, as plain functions.

Kept apart from the database code so that each rule can be read against
docs/crm-interface.md and docs/conversation-schema.md (and tested) without
a session, and so that views can carry the rules' verdicts (``can_cancel``,
``return_deadline`` …) instead of every action re-deriving them.

Times: the database holds naive UTC; the shop lives in China time. Day-based
rules (return window, ticket dates) use the China calendar date, which is
what the customer means by "15 天内".
"""
from __future__ import annotations

import logging
import os
from datetime import date, datetime, time, timedelta, timezone
from typing import Mapping, Optional

from .views import CHINA_TZ

logger = logging.getLogger(__name__)

RETURN_WINDOW_DAYS = 15
CANCELLABLE_STATUSES = ("pending_payment", "paid")
ADDRESS_CHANGEABLE_STATUSES = ("pending_payment", "paid")
# Orders whose money counts towards total_spent (and hence member level).
SPENDING_STATUSES = ("paid", "shipped", "delivered")
INVOICEABLE_STATUSES = ("paid", "shipped", "delivered")

#: (level, cumulative spend in 元 needed to reach it), ascending.
MEMBER_LEVELS: tuple[tuple[str, float], ...] = (
    ("普通会员", 0.0),
    ("银卡", 2000.0),
    ("金卡", 8000.0),
    ("钻石", 20000.0),
)
POINTS_PER_YUAN = 100  # 100 积分 = 1 元 off
COUPON_EXPIRING_SOON = timedelta(days=7)

#: Words that make a complaint urgent whatever its category: safety, health,
#: legal action, publicity, regulators.
HIGH_RISK_WORDS: tuple[str, ...] = (
    "受伤", "起火", "爆炸", "冒烟", "过敏", "中毒",
    "律师", "起诉", "媒体", "曝光", "12315", "消协", "工商",
)
SLA_HOURS = {"high": 4, "medium": 24, "low": 48}
MEDIUM_CATEGORIES = ("quality", "after_sales", "logistics")
CORE_SENSITIVE_CATEGORIES = ("quality", "after_sales")

# Verification: this many wrong guesses for one order number within the
# window lock that order number for the rest of the window.
VERIFY_MAX_FAILURES = 5
VERIFY_WINDOW = timedelta(minutes=15)


def utc_naive(moment: datetime) -> datetime:
    """The database representation of a moment (naive UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def to_china(stored: Optional[datetime]) -> Optional[datetime]:
    """A stored (naive UTC) time as an aware China-time datetime."""
    if stored is None:
        return None
    return stored.replace(tzinfo=timezone.utc).astimezone(CHINA_TZ)


def china_day_start(day: date) -> datetime:
    """00:00 China time of ``day``, as the database stores moments (naive UTC)."""
    return utc_naive(datetime.combine(day, time(0), tzinfo=CHINA_TZ))


def china_date(stored: datetime) -> date:
    return stored.replace(tzinfo=timezone.utc).astimezone(CHINA_TZ).date()


def level_for_spend(total_spent: float) -> str:
    level = MEMBER_LEVELS[0][0]
    for name, threshold in MEMBER_LEVELS:
        if total_spent >= threshold:
            level = name
    return level


def next_level_after(level: str, total_spent: float) -> tuple[Optional[str], Optional[float]]:
    """The level above ``level`` and the spend still missing to reach it.

    Starts from the customer's recorded level rather than from the spend, so
    that a level granted by hand (or kept after a refund) is respected.
    (None, None) at the top.
    """
    names = [name for name, _ in MEMBER_LEVELS]
    position = names.index(level) if level in names else names.index(level_for_spend(total_spent))
    if position + 1 >= len(MEMBER_LEVELS):
        return None, None
    name, threshold = MEMBER_LEVELS[position + 1]
    return name, round(max(threshold - total_spent, 0.0), 2)


def return_deadline(delivered_at: Optional[datetime]) -> Optional[date]:
    """Last China-calendar day on which a return may be requested."""
    if delivered_at is None:
        return None
    return china_date(delivered_at) + timedelta(days=RETURN_WINDOW_DAYS)


def mentions_high_risk(text: str) -> bool:
    return any(word in text for word in HIGH_RISK_WORDS)


def complaint_severity(category: str, description: str, tier: Optional[str]) -> str:
    if mentions_high_risk(description):
        return "high"
    if tier == "core" and category in CORE_SENSITIVE_CATEGORIES:
        return "high"
    if category in MEDIUM_CATEGORIES:
        return "medium"
    return "low"


def sla_due(severity: str, created_at: datetime) -> datetime:
    return created_at + timedelta(hours=SLA_HOURS[severity])


def escalation_priority(tier: Optional[str], reason: str, complaint_severity: Optional[str]) -> str:
    """High for core customers, urgent complaints and risky reasons; else normal."""
    if tier == "core" or complaint_severity == "high" or mentions_high_risk(reason):
        return "high"
    return "normal"


def coupon_expiring_soon(expires_at: datetime, now: datetime) -> bool:
    return expires_at - now <= COUPON_EXPIRING_SOON


# --- escalation thresholds per value tier ------------------------------------
# Core customers reach a person sooner.  Each kind of trigger has a default
# map that an environment variable may override ("core:1,potential:2,...");
# tiers missing from the variable keep their default.  Read at call time, so
# a changed variable takes effect without a restart of anything that
# re-reads it.

ESCALATION_TIERS = ("core", "potential", "low", "unknown")
ESCALATION_THRESHOLDS: dict[str, tuple[str, dict[str, int]]] = {
    # kind: (environment variable, default per tier)
    "upset": ("KEFU_ESCALATE_UPSET_TURNS",
              {"core": 1, "potential": 2, "low": 2, "unknown": 2}),
    "fallback": ("KEFU_ESCALATE_AFTER_FALLBACKS",
                 {"core": 2, "potential": 2, "low": 2, "unknown": 2}),
}
MAX_ESCALATION_THRESHOLD = 20


def parse_tier_map(text: str, defaults: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Parse ``tier:count,...`` over ``defaults``; return the map and the problems.

    A bad entry (unknown tier, not a whole number, outside 1..20) is skipped
    and reported, so one typo cannot switch a trigger off or make it fire on
    every message.
    """
    result = dict(defaults)
    problems: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        tier, sep, value = (piece.strip() for piece in entry.partition(":"))
        if not sep or tier not in defaults:
            problems.append(f"unknown tier in {entry!r}")
            continue
        try:
            count = int(value)
        except ValueError:
            problems.append(f"not a whole number in {entry!r}")
            continue
        if not 1 <= count <= MAX_ESCALATION_THRESHOLD:
            problems.append(f"out of range 1..{MAX_ESCALATION_THRESHOLD} in {entry!r}")
            continue
        result[tier] = count
    return result, problems


def escalation_threshold(kind: str, tier: Optional[str],
                         environ: Optional[Mapping[str, str]] = None) -> int:
    """How many triggering turns in a row hand a customer of ``tier`` to a person.

    ``kind`` is ``upset`` (strongly negative messages) or ``fallback`` (turns
    the bot did not understand); an empty or unknown tier counts as
    ``unknown``.  Bad entries in the environment variable are logged (once
    per distinct value) and their tiers keep the default.
    """
    if kind not in ESCALATION_THRESHOLDS:
        raise ValueError(f"unknown escalation kind {kind!r}")
    variable, defaults = ESCALATION_THRESHOLDS[kind]
    raw = (os.environ if environ is None else environ).get(variable, "")
    thresholds, problems = parse_tier_map(raw, defaults)
    if problems and (variable, raw) not in _warned:
        _warned.add((variable, raw))
        logger.warning("%s: ignoring %s; using defaults for those tiers",
                       variable, "; ".join(problems))
    return thresholds[tier if tier in ESCALATION_TIERS else "unknown"]


_warned: set[tuple[str, str]] = set()
