"""Recomputing the stored customer model, incrementally or in full.

A run, all of it in ONE write transaction (a failure leaves the previous
state untouched, never half a refresh):

1. ``as_of`` = now. Dirty customers: everyone (``full``), or those whose
   history changed since the previous run's ``as_of`` (see
   `facts.changed_customers`), new customers without a row, and rows whose
   ``next_review_at`` has come (time alone changed their stage, window,
   signals or churn risk -- found through an index, not by scanning).
2. Their `Facts` are read with SQL aggregates (orders sorted by customer in
   one pass; complaints and ratings GROUP BY customer).
3. Population figures are recomputed from every row (stored ones for the
   clean customers, fresh ones for the dirty): the R/F/M cut points and the
   population repurchase interval. Both are needed before anything is derived.
4. Dirty rows are replaced. If the population interval moved, customers
   with a single order (whose stage depends on it) are re-derived too.
5. Clean rows whose score bin changed under the new cut points are
   re-scored (and re-tiered) by one UPDATE whose CASE expressions encode the
   cut points; rows whose bins did not move are not written.
6. Tier and stage changes are appended to ``customer_segment_changes``;
   the run is recorded in ``analytics_runs``.

An incremental run gives the same rows as a full run at the same moment
(tests check it), up to ``risk_tolerance`` in the stored churn risk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from sqlalchemy import case, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..masking import guard_logger
from ..models import AnalyticsRun, Customer, CustomerMetrics, CustomerSegmentChange
from . import clv, lifecycle, rfm
from .daynum import from_day, to_day
from .facts import Gathered, changed_customers, chunks, facts_of_row, gather
from .lifecycle import Facts
from .settings import Settings

log = guard_logger(__name__)

#: Change detection looks back this far before the previous run's ``as_of``,
#: for writes that committed late with an earlier timestamp.
WATERMARK_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class RefreshResult:
    kind: str
    customers_refreshed: int
    rows_rescored: int
    excluded_orders: int
    seconds: float
    population_interval_days: float

    def summary(self) -> str:
        return (
            f"{self.kind} refresh: {self.customers_refreshed} customers refreshed, "
            f"{self.rows_rescored} re-scored, {self.excluded_orders} orders excluded, "
            f"{self.seconds:.2f} s"
        )


def last_run(session: Session) -> Optional[AnalyticsRun]:
    return session.execute(select(AnalyticsRun).order_by(AnalyticsRun.id.desc()).limit(1)).scalar_one_or_none()


def population_interval(intervals: Iterable[float], settings: Settings) -> float:
    """Median of the repurchasers' own median intervals, in whole days (so that
    it moves rarely), or the configured default when nobody has bought twice."""
    values = [v for v in intervals if v is not None]
    if not values:
        return float(settings.default_interval_days)
    return float(round(median(values)))


def derive(
    cid: int,
    facts: Facts,
    now: datetime,
    population: float,
    cuts: dict[str, list[float]],
    settings: Settings,
    previous: Optional[tuple[str, str, datetime, Optional[int]]],
) -> dict[str, Any]:
    """The full metrics row of one customer (``previous``: old tier, stage, stage_since, cluster)."""
    now_day = to_day(now)
    stage = lifecycle.stage(facts, now_day, population, settings)
    if facts.order_count > 0:
        r = rfm.score(facts.last_day, cuts["r"])  # type: ignore[arg-type]
        f = rfm.score(facts.frequency, cuts["f"])
        m = rfm.score(facts.monetary, cuts["m"])
    else:
        r = f = m = None
    simple, discounted = clv.customer_clv(facts.frequency, facts.monetary, settings)
    review = lifecycle.next_review(facts, now_day, population, settings)
    since = previous[2] if previous is not None and previous[1] == stage else now
    return {
        "customer_id": cid,
        "order_count": facts.order_count,
        "first_order_day": facts.first_day,
        "last_order_day": facts.last_day,
        "lifetime_spend": facts.lifetime_spend,
        "median_interval_days": facts.median_interval,
        "recency_days": round(now_day - facts.last_day, 3) if facts.last_day is not None else None,
        "frequency": facts.frequency,
        "monetary": facts.monetary,
        "window_oldest_day": facts.window_oldest_day,
        "complaints_recent": facts.complaints_recent,
        "complaints_oldest_day": facts.complaints_oldest_day,
        "csat_avg": facts.csat_avg,
        "csat_count": facts.csat_count,
        "csat_oldest_day": facts.csat_oldest_day,
        "r_score": r,
        "f_score": f,
        "m_score": m,
        "tier": rfm.tier(r, f, m, settings.core_threshold, settings.potential_threshold),
        "stage": stage,
        "stage_since": since,
        "clv_simple": simple,
        "clv_discounted": discounted,
        "churn_risk": lifecycle.churn_risk(facts, now_day, population, settings),
        "cluster": previous[3] if previous is not None else None,
        "computed_at": now,
        # A second early rather than late: the review must not miss its moment.
        "next_review_at": from_day(review) - timedelta(seconds=1) if review is not None else None,
    }


def _previous(session: Session, ids: Optional[Sequence[int]]) -> dict[int, tuple[str, str, datetime, Optional[int]]]:
    cols = (
        CustomerMetrics.customer_id,
        CustomerMetrics.tier,
        CustomerMetrics.stage,
        CustomerMetrics.stage_since,
        CustomerMetrics.cluster,
    )
    out: dict[int, tuple[str, str, datetime, Optional[int]]] = {}
    queries = [select(*cols)] if ids is None else [select(*cols).where(CustomerMetrics.customer_id.in_(p)) for p in chunks(list(ids))]
    for q in queries:
        for cid, tier, stage, since, cluster in session.execute(q):
            out[cid] = (tier, stage, since, cluster)
    return out


def _clean_population(session: Session, dirty: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """R/F/M values and intervals of stored buyers that are not being recomputed."""
    rows = session.execute(
        select(
            CustomerMetrics.customer_id,
            CustomerMetrics.last_order_day,
            CustomerMetrics.frequency,
            CustomerMetrics.monetary,
            CustomerMetrics.median_interval_days,
            CustomerMetrics.order_count,
        ).where(CustomerMetrics.order_count > 0)
    ).all()
    keep = [row for row in rows if row[0] not in dirty]
    r = np.array([row[1] for row in keep], dtype=float)
    f = np.array([row[2] for row in keep], dtype=float)
    m = np.array([float(row[3]) for row in keep], dtype=float)
    intervals = [row[4] for row in keep if row[5] >= 2]
    return r, f, m, intervals


def _score_case(column: Any, cuts: Sequence[float]) -> Any:
    expr: Any = literal(1)
    for cut in cuts:
        expr = expr + case((column > cut, 1), else_=0)
    return expr


def refresh(
    session_factory: Any,
    now: datetime,
    *,
    full: bool = False,
    settings: Settings = Settings(),
    strict: bool = False,
) -> RefreshResult:
    """Run one refresh at ``now`` (naive UTC); see the module docstring.

    ``strict``: refuse (`InvalidInput`, nothing written) when excluded bad
    orders are found, instead of leaving them out.
    """
    started = time.perf_counter()
    wall_start = datetime.utcnow()
    now_day = to_day(now)
    with session_factory() as session:
        previous_run = last_run(session)
        kind = "full" if full or previous_run is None else "incremental"
        if kind == "full":
            dirty_ids: Optional[list[int]] = None
        else:
            assert previous_run is not None
            since = min(previous_run.as_of, now) - WATERMARK_SLACK
            dirty_ids = sorted(changed_customers(session, since, now))
        gathered: Gathered = gather(session, dirty_ids, now_day, settings)
        if strict and (gathered.negative_orders or gathered.future_orders):
            raise InvalidInput(
                f"发现异常订单：金额为负{gathered.negative_orders}笔，下单时间在未来{gathered.future_orders}笔，"
                "本次分析未写入任何结果，请先核对订单数据。"
            )
        dirty = set(gathered.facts) if dirty_ids is None else set(dirty_ids)
        previous = _previous(session, dirty_ids)

        # Population figures over clean stored rows plus fresh dirty facts.
        if kind == "full":
            r0 = f0 = m0 = np.array([], dtype=float)
            intervals0: list[float] = []
        else:
            r0, f0, m0, intervals0 = _clean_population(session, dirty)
        buyers = [f for f in gathered.facts.values() if f.order_count > 0]
        r_all = np.concatenate([r0, np.array([f.last_day for f in buyers], dtype=float)])
        f_all = np.concatenate([f0, np.array([f.frequency for f in buyers], dtype=float)])
        m_all = np.concatenate([m0, np.array([f.monetary for f in buyers], dtype=float)])
        cuts = {
            "r": rfm.cut_points(r_all, settings.bins),
            "f": rfm.cut_points(f_all, settings.bins),
            "m": rfm.cut_points(m_all, settings.bins),
        }
        population = population_interval(
            intervals0 + [f.median_interval for f in buyers if f.order_count >= 2], settings  # type: ignore[misc]
        )
        old_population = previous_run.population_interval_days if previous_run is not None else None

        rows = [derive(cid, facts, now, population, cuts, settings, previous.get(cid)) for cid, facts in gathered.facts.items()]

        changes: list[dict[str, Any]] = []
        for row in rows:
            old = previous.get(row["customer_id"])
            for field, index in (("tier", 0), ("stage", 1)):
                old_value = old[index] if old is not None else None
                if old_value != row[field]:
                    changes.append(
                        {"customer_id": row["customer_id"], "field": field, "old_value": old_value,
                         "new_value": row[field], "changed_at": now}
                    )

        # -- writes: one transaction from here -----------------------------
        from ..config import WRITE_OPTIONS

        session.commit()  # end the read transaction; the write one takes the lock
        session.connection(execution_options=WRITE_OPTIONS)
        table = CustomerMetrics.__table__
        deleted_ids = select(Customer.id).where(Customer.deleted.is_(True))
        session.execute(delete(table).where(table.c.customer_id.in_(deleted_ids)))
        if dirty_ids is None:
            session.execute(delete(table))
        else:
            for part in chunks(dirty_ids):
                session.execute(delete(table).where(table.c.customer_id.in_(part)))
        if rows:
            session.execute(insert(table), rows)

        restaged = 0
        if kind == "incremental" and old_population is not None and population != old_population:
            restaged = _restage_single_buyers(session, dirty, now, population, settings, changes)

        rescored = _rescore_clean(session, cuts, settings, now) if kind == "incremental" else 0
        if changes:
            session.execute(insert(CustomerSegmentChange.__table__), changes)
        _sync_customer_tiers(session)
        session.add(
            AnalyticsRun(
                kind=kind,
                started_at=wall_start,
                finished_at=datetime.utcnow(),
                as_of=now,
                customers_refreshed=len(rows) + restaged,
                rows_rescored=rescored,
                excluded_orders=gathered.excluded_orders,
                population_interval_days=population,
                cuts=cuts,
                settings=settings.as_dict(),
            )
        )
        session.commit()
    result = RefreshResult(
        kind, len(rows) + restaged, rescored, gathered.excluded_orders, time.perf_counter() - started, population
    )
    log.info("%s", result.summary())
    return result


def _sync_customer_tiers(session: Session) -> None:
    """Copy each computed tier onto ``customers.tier`` where it differs.

    Complaint severity and escalation priority (crm_adapter.policy) read the
    customer's tier; after a refresh they treat customers by what they are
    worth now, not by the tier they were given on import.
    """
    customers = Customer.__table__
    metrics = CustomerMetrics.__table__
    computed = select(metrics.c.tier).where(metrics.c.customer_id == customers.c.id).scalar_subquery()
    differs = (
        select(metrics.c.customer_id)
        .where(metrics.c.customer_id == customers.c.id, metrics.c.tier != customers.c.tier)
        .exists()
    )
    session.execute(update(customers).where(differs).values(tier=computed))


def _restage_single_buyers(
    session: Session, dirty: set[int], now: datetime, population: float, settings: Settings,
    changes: list[dict[str, Any]],
) -> int:
    """Re-derive the population-dependent values of clean single-order customers."""
    now_day = to_day(now)
    stored = session.execute(
        select(CustomerMetrics).where(CustomerMetrics.order_count == 1)
    ).scalars().all()
    updates = []
    for row in stored:
        if row.customer_id in dirty:
            continue
        facts = facts_of_row(row)
        stage = lifecycle.stage(facts, now_day, population, settings)
        review = lifecycle.next_review(facts, now_day, population, settings)
        if stage != row.stage:
            changes.append({"customer_id": row.customer_id, "field": "stage", "old_value": row.stage,
                            "new_value": stage, "changed_at": now})
        updates.append({
            "cid": row.customer_id,
            "stage": stage,
            "stage_since": row.stage_since if stage == row.stage else now,
            "churn_risk": lifecycle.churn_risk(facts, now_day, population, settings),
            "next_review_at": from_day(review) - timedelta(seconds=1) if review is not None else None,
        })
    session.expunge_all()
    if updates:
        from sqlalchemy import bindparam

        session.execute(
            update(CustomerMetrics.__table__)
            .where(CustomerMetrics.__table__.c.customer_id == bindparam("cid"))
            .values(stage=bindparam("stage"), stage_since=bindparam("stage_since"),
                    churn_risk=bindparam("churn_risk"), next_review_at=bindparam("next_review_at")),
            updates,
        )
    return len(updates)


def _rescore_clean(session: Session, cuts: dict[str, list[float]], settings: Settings, now: datetime) -> int:
    """Re-score (and re-tier) the rows whose bins moved under the new cut points."""
    t = CustomerMetrics.__table__
    r = _score_case(t.c.last_order_day, cuts["r"])
    f = _score_case(t.c.frequency, cuts["f"])
    m = _score_case(t.c.monetary, cuts["m"])
    total = r + f + m
    new_tier = case(
        (total >= settings.core_threshold, "core"),
        (total >= settings.potential_threshold, "potential"),
        else_="low",
    )
    moved = (t.c.order_count > 0) & ((t.c.r_score != r) | (t.c.f_score != f) | (t.c.m_score != m))
    session.execute(
        insert(CustomerSegmentChange.__table__).from_select(
            ["customer_id", "field", "old_value", "new_value", "changed_at"],
            select(t.c.customer_id, literal("tier"), t.c.tier, new_tier, literal(now)).where(moved, t.c.tier != new_tier),
        )
    )
    result = session.execute(
        update(t).where(moved).values(r_score=r, f_score=f, m_score=m, tier=new_tier)
    )
    return int(result.rowcount or 0)
