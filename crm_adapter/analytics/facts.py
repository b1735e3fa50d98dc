"""Reading `Facts` out of the CRM tables: aggregation pushed into SQL where it can be.

Counted orders are ``paid``/``shipped``/``delivered`` (money kept by the
shop); ``pending_payment``, ``cancelled`` and ``returned`` (the whole order
came back) never count. An order's amount is its total minus refunds already
paid on it (``return_requests.status = 'refunded'``, partial returns), never
below zero; refunds still in progress are not subtracted until they happen.

Excluded, and counted in the run's ``excluded_orders`` rather than failing
the whole refresh (a single bad import row must not stop the desk's figures):
orders with a negative total, orders dated after ``now`` (they count once
their time comes: they are "changed" until then, see `changed_customers`),
and every order of a deleted (anonymised) customer, who gets no metrics row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from statistics import median
from typing import Iterable, Iterator, Optional, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..models import Complaint, CsatRating, Customer, CustomerMetrics, Order, ReturnRequest
from .daynum import day_number
from .lifecycle import Facts
from .settings import Settings

COUNTED_STATUSES = ("paid", "shipped", "delivered")
CHUNK = 500


@dataclass
class Gathered:
    facts: dict[int, Facts]
    excluded_orders: int = 0
    negative_orders: int = 0
    future_orders: int = 0
    problems: list[str] = field(default_factory=list)


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _scoped(query, column, ids: Optional[Sequence[int]]):  # type: ignore[no-untyped-def]
    """``query`` once for everyone (ids None) or once per chunk of ids."""
    if ids is None:
        yield query
    else:
        for part in chunks(ids):
            yield query.where(column.in_(part))


def live_customer_ids(session: Session) -> list[int]:
    return list(session.execute(select(Customer.id).where(Customer.deleted.is_(False)).order_by(Customer.id)).scalars())


def gather(session: Session, ids: Optional[Sequence[int]], now_day: float, settings: Settings) -> Gathered:
    """Facts for ``ids`` (None: every live customer); customers without history get empty facts."""
    if ids is None:
        ids_list: Optional[list[int]] = None
        result = Gathered({cid: Facts() for cid in live_customer_ids(session)})
    else:
        ids_list = sorted(set(ids))
        live: list[int] = []
        for part in chunks(ids_list):
            live.extend(
                session.execute(
                    select(Customer.id).where(Customer.id.in_(part), Customer.deleted.is_(False))
                ).scalars()
            )
        result = Gathered({cid: Facts() for cid in live})
    _orders(session, ids_list, now_day, settings, result)
    _complaints(session, ids_list, now_day, settings, result)
    _csat(session, ids_list, now_day, settings, result)
    return result


def _orders(session: Session, ids: Optional[list[int]], now_day: float, settings: Settings, out: Gathered) -> None:
    refunds = (
        select(ReturnRequest.order_id, func.sum(ReturnRequest.refund_amount).label("refunded"))
        .where(ReturnRequest.status == "refunded")
        .group_by(ReturnRequest.order_id)
        .subquery()
    )
    query = (
        select(Order.customer_id, day_number(Order.created_at), Order.total, func.coalesce(refunds.c.refunded, 0.0))
        .join(refunds, refunds.c.order_id == Order.id, isouter=True)
        .where(Order.status.in_(COUNTED_STATUSES))
        .order_by(Order.customer_id, Order.created_at, Order.id)
    )
    window_start = now_day - settings.window_days
    facts = out.facts
    for q in _scoped(query, Order.customer_id, ids):
        rows = session.execute(q)
        for cid, group in groupby(rows, key=lambda r: r[0]):
            if cid not in facts:  # deleted customer
                out.excluded_orders += sum(1 for _ in group)
                continue
            days: list[float] = []
            lifetime = 0.0
            frequency = 0
            monetary = 0.0
            oldest_in_window: Optional[float] = None
            for _, day, total, refunded in group:
                total = float(total)
                if total < 0:
                    out.excluded_orders += 1
                    out.negative_orders += 1
                    continue
                if day > now_day:
                    out.excluded_orders += 1
                    out.future_orders += 1
                    continue
                amount = max(total - float(refunded or 0.0), 0.0)
                days.append(day)
                lifetime += amount
                if day > window_start:
                    frequency += 1
                    monetary += amount
                    if oldest_in_window is None:
                        oldest_in_window = day
            if not days:
                continue
            gaps = [b - a for a, b in zip(days, days[1:])]
            facts[cid] = Facts(
                order_count=len(days),
                first_day=days[0],
                last_day=days[-1],
                lifetime_spend=round(lifetime, 2),
                median_interval=float(median(gaps)) if gaps else None,
                frequency=frequency,
                monetary=round(monetary, 2),
                window_oldest_day=oldest_in_window,
            )


def _replace(f: Facts, **changes: object) -> Facts:
    from dataclasses import replace

    return replace(f, **changes)  # type: ignore[arg-type]


def _complaints(session: Session, ids: Optional[list[int]], now_day: float, settings: Settings, out: Gathered) -> None:
    day = day_number(Complaint.created_at)
    query = (
        select(Complaint.customer_id, func.count(), func.min(day))
        .where(
            Complaint.customer_id.is_not(None),
            day > now_day - settings.complaint_window_days,
            day <= now_day,
        )
        .group_by(Complaint.customer_id)
    )
    for q in _scoped(query, Complaint.customer_id, ids):
        for cid, n, oldest in session.execute(q):
            if cid in out.facts:
                out.facts[cid] = _replace(out.facts[cid], complaints_recent=int(n), complaints_oldest_day=oldest)


def _csat(session: Session, ids: Optional[list[int]], now_day: float, settings: Settings, out: Gathered) -> None:
    day = day_number(CsatRating.created_at)
    query = (
        select(CsatRating.customer_id, func.count(), func.sum(CsatRating.score), func.min(day))
        .where(
            CsatRating.customer_id.is_not(None),
            day > now_day - settings.csat_window_days,
            day <= now_day,
        )
        .group_by(CsatRating.customer_id)
    )
    for q in _scoped(query, CsatRating.customer_id, ids):
        for cid, n, total, oldest in session.execute(q):
            if cid in out.facts:
                out.facts[cid] = _replace(
                    out.facts[cid], csat_count=int(n), csat_avg=round(float(total) / int(n), 2), csat_oldest_day=oldest
                )


def changed_customers(session: Session, since, now) -> set[int]:  # type: ignore[no-untyped-def]
    """Customers whose orders, refunds, complaints or ratings changed at or after ``since``.

    Relies on every change stamping a time: order creation ``created_at``,
    payment ``paid_at``, cancellation ``cancelled_at`` and every other status
    or amount change ``updated_at`` (the CRM's write methods do; importers
    must too); returns ``created_at``/``updated_at``; complaints
    ``created_at``/``resolved_at``; ratings ``created_at``. Orders dated in the
    future stay "changed" until their time has come.
    """
    found: set[int] = set()
    order_changed = or_(
        Order.created_at >= since,
        Order.updated_at >= since,
        Order.paid_at >= since,
        Order.cancelled_at >= since,
    )
    found.update(session.execute(select(Order.customer_id).where(order_changed).distinct()).scalars())
    found.update(
        session.execute(
            select(ReturnRequest.customer_id)
            .where(or_(ReturnRequest.created_at >= since, ReturnRequest.updated_at >= since))
            .distinct()
        ).scalars()
    )
    found.update(
        session.execute(
            select(Complaint.customer_id)
            .where(Complaint.customer_id.is_not(None), or_(Complaint.created_at >= since, Complaint.resolved_at >= since))
            .distinct()
        ).scalars()
    )
    found.update(
        session.execute(
            select(CsatRating.customer_id)
            .where(CsatRating.customer_id.is_not(None), CsatRating.created_at >= since)
            .distinct()
        ).scalars()
    )
    # Customers with no row yet (new sign-ups) and rows whose review time has come.
    found.update(
        session.execute(
            select(Customer.id)
            .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
            .where(Customer.deleted.is_(False), CustomerMetrics.customer_id.is_(None))
        ).scalars()
    )
    found.update(
        session.execute(select(CustomerMetrics.customer_id).where(CustomerMetrics.next_review_at <= now)).scalars()
    )
    return found


def facts_of_row(row: CustomerMetrics) -> Facts:
    """The stored facts of a metrics row (for re-deriving without the history)."""
    return Facts(
        order_count=row.order_count,
        first_day=row.first_order_day,
        last_day=row.last_order_day,
        lifetime_spend=float(row.lifetime_spend),
        median_interval=row.median_interval_days,
        frequency=row.frequency,
        monetary=float(row.monetary),
        window_oldest_day=row.window_oldest_day,
        complaints_recent=row.complaints_recent,
        complaints_oldest_day=row.complaints_oldest_day,
        csat_avg=row.csat_avg,
        csat_count=row.csat_count,
        csat_oldest_day=row.csat_oldest_day,
    )
