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

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from sqlalchemy import Float, cast, func, or_, select, union
from sqlalchemy.orm import Session

from ..models import Complaint, CsatRating, Customer, CustomerMetrics, Order, ReturnRequest
from .bulk import fetch_columns
from .daynum import day_number
from .lifecycle import Facts
from .settings import Settings

COUNTED_STATUSES = ("paid", "shipped", "delivered")
CHUNK = 500


@dataclass
class FactsTable:
    """`Facts` of many customers as aligned numpy columns, sorted by customer id.

    The refresh works on whole columns: at a million customers a `Facts`
    object per customer (and a Python loop per order) is most of the run.
    Missing values are NaN in the float columns (None in `Facts`).
    """

    ids: np.ndarray
    order_count: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray
    lifetime_spend: np.ndarray
    median_interval: np.ndarray
    frequency: np.ndarray
    monetary: np.ndarray
    window_oldest_day: np.ndarray
    complaints_recent: np.ndarray
    complaints_oldest_day: np.ndarray
    csat_avg: np.ndarray
    csat_count: np.ndarray
    csat_oldest_day: np.ndarray

    @classmethod
    def empty(cls, ids: np.ndarray) -> "FactsTable":
        n = len(ids)

        def nan() -> np.ndarray:
            return np.full(n, np.nan)

        def zero_i() -> np.ndarray:
            return np.zeros(n, dtype=np.int64)

        return cls(
            ids=np.asarray(ids, dtype=np.int64), order_count=zero_i(), first_day=nan(), last_day=nan(),
            lifetime_spend=np.zeros(n), median_interval=nan(), frequency=zero_i(), monetary=np.zeros(n),
            window_oldest_day=nan(), complaints_recent=zero_i(), complaints_oldest_day=nan(), csat_avg=nan(),
            csat_count=zero_i(), csat_oldest_day=nan(),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def facts(self, i: int) -> Facts:
        """Row ``i`` as a `Facts`."""
        def opt(a: np.ndarray) -> Optional[float]:
            v = float(a[i])
            return None if math.isnan(v) else v

        return Facts(
            order_count=int(self.order_count[i]), first_day=opt(self.first_day), last_day=opt(self.last_day),
            lifetime_spend=float(self.lifetime_spend[i]), median_interval=opt(self.median_interval),
            frequency=int(self.frequency[i]), monetary=float(self.monetary[i]),
            window_oldest_day=opt(self.window_oldest_day), complaints_recent=int(self.complaints_recent[i]),
            complaints_oldest_day=opt(self.complaints_oldest_day), csat_avg=opt(self.csat_avg),
            csat_count=int(self.csat_count[i]), csat_oldest_day=opt(self.csat_oldest_day),
        )


@dataclass
class Gathered:
    table: FactsTable
    excluded_orders: int = 0
    negative_orders: int = 0
    future_orders: int = 0
    problems: list[str] = field(default_factory=list)
    #: (id, day number) of every counted order, excluded ones too, when every
    #: customer was gathered: the product signals reuse them (`products.compute`)
    #: instead of reading ten million orders again.
    counted_orders: Optional[tuple[np.ndarray, np.ndarray]] = None

    @property
    def facts(self) -> dict[int, Facts]:
        """Per customer `Facts` (for one-customer callers; the refresh uses `table`)."""
        return {int(cid): self.table.facts(i) for i, cid in enumerate(self.table.ids)}


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


def live_customer_ids(session: Session) -> np.ndarray:
    customers = Customer.__table__
    query = select(customers.c.id).where(customers.c.deleted.is_(False)).order_by(customers.c.id)
    return fetch_columns(session.connection(), [query], 1)[:, 0].astype(np.int64)


def gather(session: Session, ids: Optional[Sequence[int]], now_day: float, settings: Settings) -> Gathered:
    """Facts for ``ids`` (None: every live customer); customers without history get empty facts."""
    if ids is None:
        ids_list: Optional[list[int]] = None
        live = live_customer_ids(session)
    else:
        ids_list = sorted(set(ids))
        found: list[int] = []
        for part in chunks(ids_list):
            found.extend(
                session.execute(
                    select(Customer.id).where(Customer.id.in_(part), Customer.deleted.is_(False))
                ).scalars()
            )
        live = np.sort(np.asarray(found, dtype=np.int64))
    result = Gathered(FactsTable.empty(live))
    _orders(session, ids_list, now_day, settings, result)
    _complaints(session, ids_list, now_day, settings, result)
    _csat(session, ids_list, now_day, settings, result)
    return result


def _orders(session: Session, ids: Optional[list[int]], now_day: float, settings: Settings, out: Gathered) -> None:
    """Order facts, column-wise; the same rules and float operations, in the
    same order, as a per-order loop over (customer, created_at, id) would use."""
    orders = Order.__table__
    returns = ReturnRequest.__table__
    query = (
        select(orders.c.customer_id, day_number(orders.c.created_at), cast(orders.c.total, Float), orders.c.id)
        .where(orders.c.status.in_(COUNTED_STATUSES))
        # ix_orders_customer_history covers this order: no sort, no table lookups.
        .order_by(orders.c.customer_id, orders.c.created_at, orders.c.id)
    )
    data = fetch_columns(session.connection(), _scoped(query, orders.c.customer_id, ids), 4)
    cid = data[:, 0].astype(np.int64)
    day = data[:, 1]
    total = data[:, 2]
    oid = data[:, 3].astype(np.int64)
    del data
    if ids is None:
        out.counted_orders = (oid, day.copy())  # a copy: a view would keep all of ``data`` alive

    table = out.table
    pos = np.searchsorted(table.ids, cid)
    live = pos < len(table.ids)
    live[live] = table.ids[pos[live]] == cid[live]
    out.excluded_orders += int(np.count_nonzero(~live))  # deleted customers' orders
    negative = live & (total < 0)
    future = live & ~negative & (day > now_day)
    out.negative_orders += int(np.count_nonzero(negative))
    out.future_orders += int(np.count_nonzero(future))
    out.excluded_orders += int(np.count_nonzero(negative)) + int(np.count_nonzero(future))
    keep = live & ~negative & ~future
    pos, day, total, oid = pos[keep], day[keep], total[keep], oid[keep]
    if len(pos) == 0:
        return

    refunded = np.zeros(len(oid))
    refund_query = (
        select(returns.c.order_id, cast(func.sum(returns.c.refund_amount), Float))
        .where(returns.c.status == "refunded")
        .group_by(returns.c.order_id)
    )
    refunds = fetch_columns(session.connection(), [refund_query], 2)
    if len(refunds):
        refunds = refunds[np.argsort(refunds[:, 0], kind="stable")]
        refund_ids = refunds[:, 0].astype(np.int64)
        at = np.minimum(np.searchsorted(refund_ids, oid), len(refund_ids) - 1)
        hit = refund_ids[at] == oid
        refunded[hit] = np.nan_to_num(refunds[at[hit], 1])
    amount = np.maximum(total - refunded, 0.0)

    # Groups: rows arrive sorted by customer, then time, then id.
    n = len(pos)
    starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
    ends = np.r_[starts[1:], n]
    counts = ends - starts
    group = np.repeat(np.arange(len(starts)), counts)
    rows = pos[starts]  # row of each group in the table
    g = len(starts)

    table.order_count[rows] = counts
    table.first_day[rows] = day[starts]
    table.last_day[rows] = day[ends - 1]
    # bincount adds in array order, from 0.0: the same sums as a running total.
    table.lifetime_spend[rows] = _round_each(np.bincount(group, weights=amount, minlength=g), 2)
    in_window = day > now_day - settings.window_days
    table.frequency[rows] = np.bincount(group[in_window], minlength=g)
    table.monetary[rows] = _round_each(np.bincount(group[in_window], weights=amount[in_window], minlength=g), 2)
    first_in_window, at = np.unique(group[in_window], return_index=True)
    table.window_oldest_day[rows[first_in_window]] = day[in_window][at]

    # Median gap between consecutive orders (statistics.median's rule).
    same = group[1:] == group[:-1]
    gaps = (day[1:] - day[:-1])[same]
    gap_group = group[1:][same]
    if len(gaps):
        order = np.lexsort((gaps, gap_group))
        gaps, gap_group = gaps[order], gap_group[order]
        k = np.bincount(gap_group, minlength=g)
        has = k > 0
        offset = np.r_[0, np.cumsum(k)[:-1]]
        lo = (offset + (k - 1) // 2)[has]
        hi = (offset + k // 2)[has]
        odd = (k % 2 == 1)[has]
        table.median_interval[rows[has]] = np.where(odd, gaps[lo], (gaps[lo] + gaps[hi]) / 2)


def _round_each(values: np.ndarray, digits: int) -> np.ndarray:
    """Python's round() per value (numpy's rounds half-way cases differently)."""
    return np.array([round(v, digits) for v in values.tolist()], dtype=np.float64)


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
    table = out.table
    for q in _scoped(query, Complaint.customer_id, ids):
        for cid, n, oldest in session.execute(q):
            i = _row_of(table, cid)
            if i is not None:
                table.complaints_recent[i] = int(n)
                table.complaints_oldest_day[i] = oldest


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
    table = out.table
    for q in _scoped(query, CsatRating.customer_id, ids):
        for cid, n, total, oldest in session.execute(q):
            i = _row_of(table, cid)
            if i is not None:
                table.csat_count[i] = int(n)
                table.csat_avg[i] = round(float(total) / int(n), 2)
                table.csat_oldest_day[i] = oldest


def _row_of(table: FactsTable, cid: int) -> Optional[int]:
    i = int(np.searchsorted(table.ids, cid))
    return i if i < len(table.ids) and table.ids[i] == cid else None


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
    # One indexed lookup per time column, not one OR over all four: SQLite
    # plans that OR (with DISTINCT) as a walk over every order in customer
    # order (8 s at a million orders; a few ms this way).
    orders = Order.__table__
    order_changed = union(*(
        select(orders.c.customer_id).where(column >= since)
        for column in (orders.c.created_at, orders.c.updated_at, orders.c.paid_at, orders.c.cancelled_at)
    ))
    found.update(session.execute(order_changed).scalars())
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


def facts_of_row(row: Any) -> Facts:
    """The stored facts of a metrics row (a `CustomerMetrics`, or a Row with its
    columns by name), for re-deriving without the history."""
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
