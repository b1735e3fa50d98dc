"""The desk's KPIs over a period ``[start, end)`` (naive UTC), as frozen views.

Definitions (docs/analytics.md repeats them with their reasons):

* counted orders: paid/shipped/delivered with a non-negative total, dated in
  the period; revenue is their gross total (refunds are a separate figure);
  AOV = revenue / counted orders;
* retention rate: of the customers who bought in the previous period of the
  same length, the share who bought again in this one; churn rate = 1 -
  retention (period churn, the manager's figure; the per-customer view is the
  lifecycle stage);
* repurchase rate: of this period's buyers, the share with two or more orders
  in it;
* CSAT: mean of the 1-5 ratings given in the period, and the share of 4 and 5;
* NPS: % promoters (9-10) - % detractors (0-6) among the period's
  ``nps_responses``, from -100 to 100;
* complaint rate: complaints created in the period per 100 counted orders;
  resolution time: hours from creation to ``resolved_at`` for complaints
  resolved in the period (mean and median);
* cross-sell rate: of the period's buyers who had bought before it, the
  share who bought a product category they had never bought before;
* tier-upgrade rate: customers whose tier went up (low -> potential -> core)
  in the period, per customer with a stored tier;
* CLV by tier: the current stored discounted CLV (a snapshot, not a period
  figure): count, mean, median, 90th percentile, total.

Rates are None when their denominator is zero.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Optional

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..models import (
    Complaint,
    CsatRating,
    CustomerMetrics,
    CustomerSegmentChange,
    NpsResponse,
    Order,
    OrderItem,
    Product,
)
from ..views import KpiReport, TierClv
from .facts import COUNTED_STATUSES

TIER_RANK = {"low": 0, "potential": 1, "core": 2}


def _ratio(numerator: float, denominator: float) -> Optional[float]:
    return round(numerator / denominator, 4) if denominator else None


def _counted(start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    return (
        Order.status.in_(COUNTED_STATUSES),
        Order.total >= 0,
        Order.created_at >= start,
        Order.created_at < end,
    )


def _buyers(session: Session, start: datetime, end: datetime) -> dict[int, int]:
    return {
        cid: int(n)
        for cid, n in session.execute(
            select(Order.customer_id, func.count()).where(*_counted(start, end)).group_by(Order.customer_id)
        )
    }


def kpi_report(session: Session, start: datetime, end: datetime) -> KpiReport:
    if not isinstance(start, datetime) or not isinstance(end, datetime) or not start < end:
        raise InvalidInput("统计区间不正确：开始时间必须早于结束时间。")
    length = end - start
    orders, revenue = session.execute(
        select(func.count(), func.coalesce(func.sum(Order.total), 0.0)).where(*_counted(start, end))
    ).one()
    orders, revenue = int(orders), float(revenue)
    buyers = _buyers(session, start, end)
    previous = _buyers(session, start - length, start)
    retained = sum(1 for cid in previous if cid in buyers)
    retention = _ratio(retained, len(previous))

    csat_n, csat_sum, csat_good = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(CsatRating.score), 0),
            func.coalesce(func.sum(case((CsatRating.score >= 4, 1), else_=0)), 0),
        ).where(CsatRating.created_at >= start, CsatRating.created_at < end)
    ).one()
    nps_scores = list(
        session.execute(
            select(NpsResponse.score).where(NpsResponse.created_at >= start, NpsResponse.created_at < end)
        ).scalars()
    )
    promoters = sum(1 for s in nps_scores if s >= 9)
    detractors = sum(1 for s in nps_scores if s <= 6)

    complaints = int(
        session.execute(
            select(func.count()).where(Complaint.created_at >= start, Complaint.created_at < end)
        ).scalar_one()
    )
    resolved = session.execute(
        select(Complaint.created_at, Complaint.resolved_at).where(
            Complaint.resolved_at >= start, Complaint.resolved_at < end
        )
    ).all()
    hours = [(done - created).total_seconds() / 3600 for created, done in resolved if done >= created]

    return KpiReport(
        start=start,
        end=end,
        retention_rate=retention,
        repurchase_rate=_ratio(sum(1 for n in buyers.values() if n >= 2), len(buyers)),
        churn_rate=round(1 - retention, 4) if retention is not None else None,
        clv_by_tier=clv_by_tier(session),
        csat_average=round(int(csat_sum) / int(csat_n), 3) if csat_n else None,
        csat_satisfied_rate=_ratio(int(csat_good), int(csat_n)),
        csat_responses=int(csat_n),
        nps=round(100.0 * (promoters - detractors) / len(nps_scores), 1) if nps_scores else None,
        nps_responses=len(nps_scores),
        complaint_rate_per_100_orders=round(100.0 * complaints / orders, 3) if orders else None,
        complaints=complaints,
        resolution_hours_mean=round(sum(hours) / len(hours), 2) if hours else None,
        resolution_hours_median=round(float(median(hours)), 2) if hours else None,
        cross_sell_rate=cross_sell_rate(session, start, end, set(buyers)),
        tier_upgrade_rate=tier_upgrade_rate(session, start, end),
        aov=round(revenue / orders, 2) if orders else None,
        orders=orders,
        revenue=round(revenue, 2),
        active_customers=len(buyers),
    )


def cross_sell_rate(session: Session, start: datetime, end: datetime, buyers: set[int]) -> Optional[float]:
    def categories(*where) -> dict[int, set[str]]:  # type: ignore[no-untyped-def]
        found: dict[int, set[str]] = defaultdict(set)
        query = (
            select(Order.customer_id, Product.category)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(Product, Product.id == OrderItem.product_id)
            .where(Order.status.in_(COUNTED_STATUSES), Order.total >= 0, *where)
            .distinct()
        )
        for cid, category in session.execute(query):
            found[cid].add(category)
        return found

    now_bought = categories(Order.created_at >= start, Order.created_at < end)
    before = categories(Order.created_at < start)
    returning = [cid for cid in buyers if cid in before]
    crossed = sum(1 for cid in returning if now_bought.get(cid, set()) - before[cid])
    return _ratio(crossed, len(returning))


def tier_upgrade_rate(session: Session, start: datetime, end: datetime) -> Optional[float]:
    rows = session.execute(
        select(CustomerSegmentChange.customer_id, CustomerSegmentChange.old_value, CustomerSegmentChange.new_value)
        .where(
            CustomerSegmentChange.field == "tier",
            CustomerSegmentChange.old_value.is_not(None),
            CustomerSegmentChange.changed_at >= start,
            CustomerSegmentChange.changed_at < end,
        )
    ).all()
    upgraded = {cid for cid, old, new in rows if TIER_RANK.get(new, 0) > TIER_RANK.get(old, 0)}
    population = int(session.execute(select(func.count()).select_from(CustomerMetrics)).scalar_one())
    return _ratio(len(upgraded), population)


def clv_by_tier(session: Session) -> tuple[TierClv, ...]:
    values: dict[str, list[float]] = defaultdict(list)
    for tier, value in session.execute(select(CustomerMetrics.tier, CustomerMetrics.clv_discounted)):
        values[tier].append(float(value))
    out = []
    for tier in ("core", "potential", "low"):
        data = np.asarray(values.get(tier, []), dtype=float)
        if len(data) == 0:
            out.append(TierClv(tier, 0, 0.0, 0.0, 0.0, 0.0))
            continue
        out.append(
            TierClv(
                tier=tier,
                customers=int(len(data)),
                clv_mean=round(float(data.mean()), 2),
                clv_p50=round(float(np.percentile(data, 50)), 2),
                clv_p90=round(float(np.percentile(data, 90)), 2),
                clv_total=round(float(data.sum()), 2),
            )
        )
    return tuple(out)
