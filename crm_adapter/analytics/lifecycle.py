"""Lifecycle stage, churn risk, and when time alone changes them.

All functions here are pure: they take a customer's `Facts` (what the order,
complaint and rating history says, summarised) and a moment ``now`` given as
a day number (days since 1970-01-01 UTC, fractional), so that the refresh,
the single-customer profile and the tests all derive the same answers.

Stages (first rule that applies wins):

1. 潜在 ``potential`` -- no counted order at all;
2. 已流失 ``churned`` -- days since the last order > ``churned_factor`` x the
   customer's usual interval;
3. 流失风险 ``at_risk`` -- days since the last order > ``at_risk_factor`` x
   the usual interval;
4. 新客 ``new`` -- only one counted order, or the first order is less than
   ``new_days`` old;
5. 忠诚 ``loyal`` -- at least ``loyal_min_orders`` orders in the window and
   a first order at least ``loyal_min_tenure_days`` old;
6. 成长 ``growth`` -- everyone else (repeat buyers on their way).

The usual interval is the median gap between the customer's own consecutive
orders; with fewer than two orders it is the population's (the median of
everyone's own median, refreshed each run), and never below
``min_interval_days`` (two orders on one day would otherwise make any pause
look like churn). Stages are recomputed from the facts each time, so a
churned customer who orders again is simply ``new``/``growth``/``loyal`` again.

Churn risk, in [0, 1]: ``logistic(risk_slope x (gap / interval -
at_risk_factor) + risk_per_complaint x min(recent complaints, cap) +
risk_low_csat x (3 - average recent CSAT) / 2 when below 3)``. It is 0.5 when
the gap reaches the at-risk line with no other signal, about 0.27 when a
purchase is exactly "due", 0.95 at the churn line; each recent complaint
adds what half an interval of silence adds, a rating average of 1 adds one
full step. No orders: no risk score (None) -- there is nothing to lose yet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .settings import Settings

STAGE_LABELS = {
    "potential": "潜在客户",
    "new": "新客",
    "growth": "成长期",
    "loyal": "忠诚客户",
    "at_risk": "流失风险",
    "churned": "已流失",
}
TIER_LABELS = {"core": "核心客户", "potential": "潜力客户", "low": "低价值客户"}
ACTIVE_STAGES = ("new", "growth", "loyal")


@dataclass(frozen=True)
class Facts:
    """One customer's history, summarised; days are day numbers (see module docstring)."""

    order_count: int = 0
    first_day: Optional[float] = None
    last_day: Optional[float] = None
    lifetime_spend: float = 0.0
    median_interval: Optional[float] = None
    frequency: int = 0  # counted orders in the window
    monetary: float = 0.0  # net spend in the window
    window_oldest_day: Optional[float] = None
    complaints_recent: int = 0
    complaints_oldest_day: Optional[float] = None
    csat_avg: Optional[float] = None
    csat_count: int = 0
    csat_oldest_day: Optional[float] = None


def usual_interval(facts: Facts, population_interval: float, settings: Settings) -> float:
    own = facts.median_interval if facts.order_count >= 2 and facts.median_interval is not None else None
    return max(own if own is not None else population_interval, settings.min_interval_days)


def stage(facts: Facts, now: float, population_interval: float, settings: Settings) -> str:
    if facts.order_count == 0 or facts.last_day is None or facts.first_day is None:
        return "potential"
    interval = usual_interval(facts, population_interval, settings)
    gap = now - facts.last_day
    if gap > settings.churned_factor * interval:
        return "churned"
    if gap > settings.at_risk_factor * interval:
        return "at_risk"
    if facts.order_count == 1 or now - facts.first_day < settings.new_days:
        return "new"
    if facts.frequency >= settings.loyal_min_orders and now - facts.first_day >= settings.loyal_min_tenure_days:
        return "loyal"
    return "growth"


def _signals(facts: Facts, settings: Settings) -> float:
    value = settings.risk_per_complaint * min(facts.complaints_recent, settings.risk_complaint_cap)
    if facts.csat_count and facts.csat_avg is not None and facts.csat_avg < 3.0:
        value += settings.risk_low_csat * (3.0 - facts.csat_avg) / 2.0
    return value


def _logistic(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def churn_risk(facts: Facts, now: float, population_interval: float, settings: Settings) -> Optional[float]:
    if facts.order_count == 0 or facts.last_day is None:
        return None
    interval = usual_interval(facts, population_interval, settings)
    gap = max(now - facts.last_day, 0.0)
    z = settings.risk_slope * (gap / interval - settings.at_risk_factor) + _signals(facts, settings)
    return round(_logistic(z), 4)


def churn_reasons(facts: Facts, now: float, population_interval: float, settings: Settings) -> tuple[str, ...]:
    """The risk's drivers in words staff read (Chinese)."""
    if facts.order_count == 0 or facts.last_day is None:
        return ()
    reasons = []
    interval = usual_interval(facts, population_interval, settings)
    ratio = max(now - facts.last_day, 0.0) / interval
    basis = "平时复购间隔" if facts.order_count >= 2 else "一般客户的复购间隔"
    if ratio >= 1.0:
        reasons.append(f"距上次购买已{now - facts.last_day:.0f}天，是{basis}（{interval:.0f}天）的{ratio:.1f}倍")
    if facts.complaints_recent:
        reasons.append(f"近{settings.complaint_window_days}天投诉{facts.complaints_recent}次")
    if facts.csat_count and facts.csat_avg is not None and facts.csat_avg < 3.0:
        reasons.append(f"近期满意度偏低（平均{facts.csat_avg:.1f}分）")
    return tuple(reasons)


def next_review(facts: Facts, now: float, population_interval: float, settings: Settings) -> Optional[float]:
    """The earliest day number after ``now`` at which a stored value derived
    at ``now`` stops being right: a stage line crossed, an order, complaint or
    rating leaving its window, or the churn risk risen by more than
    ``risk_tolerance``. None: nothing changes with time alone."""
    moments: list[float] = []
    if facts.window_oldest_day is not None:
        moments.append(facts.window_oldest_day + settings.window_days)
    if facts.complaints_oldest_day is not None:
        moments.append(facts.complaints_oldest_day + settings.complaint_window_days)
    if facts.csat_oldest_day is not None:
        moments.append(facts.csat_oldest_day + settings.csat_window_days)
    if facts.order_count > 0 and facts.last_day is not None and facts.first_day is not None:
        interval = usual_interval(facts, population_interval, settings)
        moments.append(facts.last_day + settings.at_risk_factor * interval)
        moments.append(facts.last_day + settings.churned_factor * interval)
        moments.append(facts.first_day + settings.new_days)
        moments.append(facts.first_day + settings.loyal_min_tenure_days)
        risk = churn_risk(facts, now, population_interval, settings)
        if risk is not None and risk + settings.risk_tolerance < 1.0:
            target = risk + settings.risk_tolerance
            z = math.log(target / (1.0 - target))
            ratio = (z - _signals(facts, settings)) / settings.risk_slope + settings.at_risk_factor
            moments.append(facts.last_day + ratio * interval)
    future = [m for m in moments if m > now]
    return min(future) if future else None
