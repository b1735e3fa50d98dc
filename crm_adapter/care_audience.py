"""Who a care campaign is for on one China calendar day: the audience queries.

Each audience kind answers "which customers, for which occasion" with one
set-based query (no query per customer), so a daily sweep over a million
customers stays a handful of scans. The occasion names *what* is being
marked -- a birthday year, a festival year, a purchase, a complaint ticket --
and together with the campaign and customer it is the send log's unique key:
a day run twice, or a window that overlaps yesterday's, never selects anyone
for the same occasion again.

Rules (consent, quiet hours, the frequency cap) are applied afterwards, in
`crm_adapter.care`; this module only knows the customer history. Assumptions
are in docs/care.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from . import care_calendar, policy
from .analytics.daynum import day_number, to_day
from .errors import InvalidInput
from .models import Complaint, Coupon, Customer, CustomerMetrics, Order, OrderItem, Product

AUDIENCE_KINDS = (
    "birthday", "holiday", "repurchase", "win_back", "complaint_followup",
    "points_expiry", "coupon_expiry", "upgrade_nudge",
)
#: Orders that count as a purchase for repurchase timing.
PURCHASED_STATUSES = ("paid", "shipped", "delivered")


@dataclass(frozen=True)
class Candidate:
    """One customer due for one occasion; ``facts`` feed the message template."""

    customer_id: int
    occasion: str
    facts: Mapping[str, Any] = field(default_factory=dict)


class month_day(FunctionElement):  # noqa: N801 -- reads like a SQL function
    """``MM-DD`` of a date column, so birthdays are matched inside the database."""

    type = String()
    inherit_cache = True


@compiles(month_day, "sqlite")
def _md_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"strftime('%m-%d', {compiler.process(element.clauses, **kw)})"


@compiles(month_day)
def _md_default(element: Any, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'MM-DD')"


def _int(params: Mapping[str, Any], name: str, default: int, low: int = 0, high: int = 3650) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"活动配置不正确：{name} 应为 {low} 到 {high} 之间的整数。")
    return value


def _live() -> Any:
    return Customer.deleted.is_(False)


def birthday(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    wanted = [f"{m:02d}-{d:02d}" for m, d in care_calendar.birthday_month_days(day)]
    rows = session.execute(
        select(Customer.id).where(_live(), Customer.birthday.isnot(None), month_day(Customer.birthday).in_(wanted))
        .order_by(Customer.id)
    )
    for (cid,) in rows:
        yield Candidate(cid, f"birthday:{day.year}", {})


def holiday(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """Everyone, on the day of a listed lunar festival or the first day of a listed statutory break."""
    lunar = [str(k) for k in params.get("lunar", [])]
    statutory = [str(k) for k in params.get("statutory", [])]
    unknown = [k for k in lunar if k not in care_calendar.LUNAR_FESTIVALS]
    if unknown:
        raise InvalidInput(f"活动配置不正确：未知的农历节日 {', '.join(unknown)}。")
    key = care_calendar.lunar_festival_on(day) if lunar else None
    if key not in lunar:
        key = None
    if key is None and statutory:
        found = care_calendar.statutory_holiday_starting(day)
        key = found if found in statutory else None
    if key is None:
        return
    facts = {"holiday": care_calendar.holiday_name_zh(key)}
    for (cid,) in session.execute(select(Customer.id).where(_live()).order_by(Customer.id)):
        yield Candidate(cid, f"{key}:{day.year}", facts)


def repurchase(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """A consumable's usual interval has passed since the customer last bought its category.

    The interval is the customer's own (mean gap between their purchases of
    that category, when they bought it at least twice) or else the product's
    ``repurchase_days``. Purchases due within the last ``lookback_days`` are
    picked up, so a missed day catches up; one reminder per last purchase.
    """
    lookback = _int(params, "lookback_days", 14, 0, 365)
    end = policy.china_day_start(day + timedelta(days=1))
    # Day numbers of the group's extremes (converting 2 values per group, not every row).
    last, first = day_number(func.max(Order.created_at)), day_number(func.min(Order.created_at))
    bought = func.count(func.distinct(Order.id))
    own = case((and_(bought >= 2, last > first), (last - first) / (bought - 1)),
               else_=func.min(Product.repurchase_days) * 1.0)
    interval = case((own < 1.0, 1.0), else_=own)  # two orders on one day are not a 0-day rhythm
    due = last + interval
    today = to_day(end)
    # The due test runs in the database: only the few due groups travel, not every
    # (customer, category) pair with a consumable purchase.
    query = (
        select(Order.customer_id, Product.category, interval, func.max(Order.order_number))
        .join(OrderItem, OrderItem.order_id == Order.id)
        .join(Product, Product.id == OrderItem.product_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(_live(), Product.repurchase_days.isnot(None), Order.status.in_(PURCHASED_STATUSES),
               Order.created_at < end)
        .group_by(Order.customer_id, Product.category)
        .having(and_(due >= today - lookback - 1, due <= today))
        .order_by(Order.customer_id, Product.category)
    )
    for cid, category, days, last_number in session.execute(query):
        yield Candidate(cid, f"repurchase:{category}:{last_number}",
                        {"category": category, "interval_days": round(float(days))})


def win_back(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """Customers who entered the at-risk stage within the last ``lookback_days`` (stored metrics)."""
    lookback = _int(params, "lookback_days", 7, 0, 365)
    stages = tuple(params.get("stages", ("at_risk",)))
    start, end = policy.china_day_start(day - timedelta(days=lookback)), policy.china_day_start(day + timedelta(days=1))
    rows = session.execute(
        select(CustomerMetrics.customer_id, CustomerMetrics.stage, CustomerMetrics.stage_since)
        .join(Customer, Customer.id == CustomerMetrics.customer_id)
        .where(_live(), CustomerMetrics.stage.in_(stages),
               CustomerMetrics.stage_since >= start, CustomerMetrics.stage_since < end)
        .order_by(CustomerMetrics.customer_id)
    )
    for cid, stage, since in rows:
        yield Candidate(cid, f"{stage}:{policy.china_date(since):%Y%m%d}", {})


def complaint_followup(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """Complaints resolved ``after_days`` days ago (China dates), catching up ``lookback_days``."""
    after = _int(params, "after_days", 3, 0, 90)
    lookback = _int(params, "lookback_days", 7, 0, 90)
    start = policy.china_day_start(day - timedelta(days=after + lookback))
    end = policy.china_day_start(day - timedelta(days=after) + timedelta(days=1))
    rows = session.execute(
        select(Complaint.customer_id, Complaint.ticket_number, Complaint.category)
        .join(Customer, Customer.id == Complaint.customer_id)
        .where(_live(), Complaint.status == "resolved", Complaint.resolved_at >= start,
               Complaint.resolved_at < end)
        .order_by(Complaint.resolved_at, Complaint.id)
    )
    for cid, ticket, category in rows:
        yield Candidate(cid, f"complaint:{ticket}", {"ticket_number": ticket, "category": category})


def points_expiry(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """Points that lapse within ``days_before`` days; one reminder per expiring batch."""
    before = _int(params, "days_before", 30, 0, 365)
    minimum = _int(params, "min_points", 1, 0, 10**9)
    rows = session.execute(
        select(Customer.id, Customer.points_expiring, Customer.points_expire_at)
        .where(_live(), Customer.points_expiring >= max(minimum, 1),
               Customer.points_expire_at >= day, Customer.points_expire_at <= day + timedelta(days=before))
        .order_by(Customer.id)
    )
    for cid, points, expire in rows:
        yield Candidate(cid, f"points:{expire:%Y%m%d}",
                        {"points_expiring": int(points), "expire_date": f"{expire.month}月{expire.day}日"})


def coupon_expiry(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """Unused coupons that expire within ``days_before`` days (China dates); one per coupon."""
    before = _int(params, "days_before", 3, 0, 90)
    start, end = policy.china_day_start(day), policy.china_day_start(day + timedelta(days=before + 1))
    rows = session.execute(
        select(Coupon.customer_id, Coupon.code, Coupon.title, Coupon.amount, Coupon.expires_at)
        .join(Customer, Customer.id == Coupon.customer_id)
        .where(_live(), Coupon.used_at.is_(None), Coupon.expires_at >= start, Coupon.expires_at < end)
        .order_by(Coupon.customer_id, Coupon.id)
    )
    for cid, code, title, amount, expires in rows:
        local = policy.to_china(expires)
        yield Candidate(cid, f"coupon:{code}", {
            "coupon_title": title, "coupon_amount": f"{amount:g}",
            "expire_date": f"{local.month}月{local.day}日",
        })


def upgrade_nudge(session: Session, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """Members within ``max_gap`` 元 of the next level (policy.MEMBER_LEVELS); one nudge per level."""
    gap = _int(params, "max_gap", 500, 1, 10**7)
    levels = policy.MEMBER_LEVELS
    conditions = []
    for (name, _), (next_name, threshold) in zip(levels, levels[1:]):
        conditions.append(and_(Customer.member_level == name, Customer.total_spent < threshold,
                               Customer.total_spent >= threshold - gap))
    rows = session.execute(
        select(Customer.id, Customer.member_level, Customer.total_spent)
        .where(_live(), or_(*conditions)).order_by(Customer.id)
    )
    for cid, level, spent in rows:
        next_level, missing = policy.next_level_after(level, float(spent))
        if next_level is None:
            continue
        yield Candidate(cid, f"upgrade:{next_level}", {"next_level": next_level, "missing": f"{missing:g}"})


SELECTORS: dict[str, Callable[[Session, date, Mapping[str, Any]], Iterator[Candidate]]] = {
    "birthday": birthday,
    "holiday": holiday,
    "repurchase": repurchase,
    "win_back": win_back,
    "complaint_followup": complaint_followup,
    "points_expiry": points_expiry,
    "coupon_expiry": coupon_expiry,
    "upgrade_nudge": upgrade_nudge,
}


def select_audience(session: Session, kind: str, day: date, params: Mapping[str, Any]) -> Iterator[Candidate]:
    """The campaign audience of ``kind`` on China date ``day`` (before consent and caps)."""
    selector = SELECTORS.get(kind)
    if selector is None:
        raise InvalidInput(f"活动配置不正确：未知的受众类型 {kind}。")
    return selector(session, day, params)
