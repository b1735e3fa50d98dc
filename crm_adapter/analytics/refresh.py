"""Recomputing the stored customer model, incrementally or in full.

A run, all of it in ONE write transaction (a failure leaves the previous
state untouched, never half a refresh):

1. ``as_of`` = now. Dirty customers: everyone (``full``), or those whose
   history changed since the previous run's ``as_of`` (see
   `facts.changed_customers`), new customers without a row, and rows whose
   ``next_review_at`` has come (time alone changed their stage, window,
   signals or churn risk -- found through an index, not by scanning).
2. Their facts are read column-wise (`facts.FactsTable`): every counted
   order in (customer, time, id) order from a covering index, straight from
   the cursor into numpy (`bulk`); complaints and ratings GROUP BY customer.
3. Population figures are recomputed from every row (stored ones for the
   clean customers, fresh ones for the dirty): the R/F/M cut points and the
   population repurchase interval. Both are needed before anything is derived.
4. Dirty rows are derived over whole columns (`derive_columns`, the same
   rules as the scalar `lifecycle`/`rfm`/`clv` the profile uses, bit for bit)
   and replaced. If the population interval moved, customers
   with a single order (whose stage depends on it) are re-derived too.
5. Clean rows whose score bin changed under the new cut points are
   re-scored (and re-tiered) by one UPDATE whose CASE expressions encode the
   cut points; rows whose bins did not move are not written.
6. Tier and stage changes are appended to ``customer_segment_changes``;
   the run is recorded in ``analytics_runs``.
7. Product popularity and co-purchase counts (`products`, for the
   recommender) are recomputed from every order line and replaced, on
   incremental runs too: a few seconds at ten million lines, and a sliding
   90-day window and status changes make them awkward to patch.

An incremental run gives the same rows as a full run at the same moment
(tests check it), up to ``risk_tolerance`` in the stored churn risk.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from sqlalchemy import Float, case, cast, delete, insert, literal, select, update
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..masking import guard_logger
from ..models import AnalyticsRun, Customer, CustomerMetrics, CustomerSegmentChange
from . import bulk, lifecycle, products, rfm
from .daynum import EPOCH, from_day, to_day
from .facts import FactsTable, Gathered, changed_customers, chunks, facts_of_row, gather
from .settings import Settings

log = guard_logger(__name__)

#: Change detection looks back this far before the previous run's ``as_of``,
#: for writes that committed late with an earlier timestamp.
WATERMARK_SLACK = timedelta(minutes=5)

#: SQLite page cache for the refresh's write transaction, in KiB (see `_widen_sqlite_cache`).
REFRESH_SQLITE_CACHE_KIB = 256 * 1024


@dataclass(frozen=True)
class RefreshResult:
    kind: str
    customers_refreshed: int
    rows_rescored: int
    excluded_orders: int
    seconds: float
    population_interval_days: float
    #: Seconds per phase (read, products, derive, write), for benchmarks and slow-run logs.
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.kind} refresh: {self.customers_refreshed} customers refreshed, "
            f"{self.rows_rescored} re-scored, {self.excluded_orders} orders excluded, "
            f"{self.seconds:.2f} s" + (f" ({', '.join(f'{k} {v:.1f} s' for k, v in self.phases.items())})"
                                       if self.phases else "")
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


_NO_REVIEW = np.inf


def derive_columns(
    table: FactsTable,
    now: datetime,
    population: float,
    cuts: dict[str, list[float]],
    settings: Settings,
    previous: dict[int, tuple[str, str, Any, Optional[int]]],
) -> dict[str, list[Any]]:
    """The metrics rows of every customer in ``table``, column by column.

    The same rules as `lifecycle`, `rfm` and `clv` apply to one customer
    (the profile re-derives with those), computed with numpy over whole
    columns: a Python call chain per customer was a third of a full refresh
    at 100,000 customers. Results are bit-identical: only IEEE
    operations that numpy performs exactly as Python does are vectorised,
    in the same order; exp/log and rounding stay Python's (numpy's can
    differ in the last bit, and rounds half-way cases differently).
    ``previous``: stored (tier, stage, stage_since, cluster) by customer.
    """
    now_day = to_day(now)
    n = len(table)
    count = table.order_count
    has = count > 0
    last, first = table.last_day, table.first_day

    own = np.where((count >= 2) & ~np.isnan(table.median_interval), table.median_interval, population)
    interval = np.maximum(own, settings.min_interval_days)  # lifecycle.usual_interval
    gap = now_day - last
    since_first = now_day - first
    stage = np.select(
        [
            ~has,
            gap > settings.churned_factor * interval,
            gap > settings.at_risk_factor * interval,
            (count == 1) | (since_first < settings.new_days),
            (table.frequency >= settings.loyal_min_orders) & (since_first >= settings.loyal_min_tenure_days),
        ],
        ["potential", "churned", "at_risk", "new", "loyal"],
        default="growth",
    ).tolist()

    r = rfm.scores(np.nan_to_num(last), cuts["r"])
    f = rfm.scores(table.frequency, cuts["f"])
    m = rfm.scores(table.monetary, cuts["m"])
    total = r + f + m
    tier = np.where(
        ~has, "low",
        np.where(total >= settings.core_threshold, "core", np.where(total >= settings.potential_threshold, "potential", "low")),
    ).tolist()

    # clv.customer_clv
    per_year = table.frequency / (settings.window_days / 365.0)
    aov = np.where(table.frequency > 0, table.monetary / np.maximum(table.frequency, 1), 0.0)
    simple = np.maximum(per_year, 0.0) * np.maximum(aov, 0.0) * max(settings.lifetime_years, 0.0)
    spend = np.maximum(per_year * aov, 0.0)
    discounted = np.zeros(n)
    for t in range(1, settings.horizon_years + 1):
        term = settings.margin * spend * settings.retention**t / (1.0 + settings.discount_rate) ** t
        discounted = term if t == 1 else discounted + term

    # lifecycle.churn_risk
    signals = settings.risk_per_complaint * np.minimum(table.complaints_recent, settings.risk_complaint_cap)
    low_csat = (table.csat_count > 0) & (table.csat_avg < 3.0)  # NaN compares False
    signals = np.where(low_csat, signals + settings.risk_low_csat * (3.0 - table.csat_avg) / 2.0, signals)
    z = settings.risk_slope * (np.maximum(gap, 0.0) / interval - settings.at_risk_factor) + signals
    logistic = lifecycle._logistic
    risk = [round(logistic(v), 4) if h else None for v, h in zip(z.tolist(), has.tolist())]

    # lifecycle.next_review
    moments = [
        table.window_oldest_day + settings.window_days,
        table.complaints_oldest_day + settings.complaint_window_days,
        table.csat_oldest_day + settings.csat_window_days,
        np.where(has, last + settings.at_risk_factor * interval, np.nan),
        np.where(has, last + settings.churned_factor * interval, np.nan),
        np.where(has, first + settings.new_days, np.nan),
        np.where(has, first + settings.loyal_min_tenure_days, np.nan),
    ]
    tolerance = settings.risk_tolerance
    risk_z = np.array(
        [math.log((v + tolerance) / (1.0 - (v + tolerance))) if v is not None and v + tolerance < 1.0 else np.nan
         for v in risk],
        dtype=np.float64,
    )
    ratio = (risk_z - signals) / settings.risk_slope + settings.at_risk_factor
    moments.append(last + ratio * interval)
    review = np.full(n, _NO_REVIEW)
    for moment in moments:
        review = np.where(moment > now_day, np.minimum(review, moment), review)  # NaN > x is False
    one_second = timedelta(seconds=1)
    # A second early rather than late: the review must not miss its moment.
    next_review = [EPOCH + timedelta(days=d) - one_second if d != _NO_REVIEW else None for d in review.tolist()]

    ids = table.ids.tolist()
    old = [previous.get(cid) for cid in ids]
    has_list = has.tolist()
    return {
        "customer_id": ids,
        "order_count": count.tolist(),
        "first_order_day": _nullable(first),
        "last_order_day": _nullable(last),
        "lifetime_spend": table.lifetime_spend.tolist(),
        "median_interval_days": _nullable(table.median_interval),
        "recency_days": [round(g, 3) if h else None for g, h in zip(gap.tolist(), has_list)],
        "frequency": table.frequency.tolist(),
        "monetary": table.monetary.tolist(),
        "window_oldest_day": _nullable(table.window_oldest_day),
        "complaints_recent": table.complaints_recent.tolist(),
        "complaints_oldest_day": _nullable(table.complaints_oldest_day),
        "csat_avg": _nullable(table.csat_avg),
        "csat_count": table.csat_count.tolist(),
        "csat_oldest_day": _nullable(table.csat_oldest_day),
        "r_score": [s if h else None for s, h in zip(r.tolist(), has_list)],
        "f_score": [s if h else None for s, h in zip(f.tolist(), has_list)],
        "m_score": [s if h else None for s, h in zip(m.tolist(), has_list)],
        "tier": tier,
        "stage": stage,
        "stage_since": [o[2] if o is not None and o[1] == s else now for o, s in zip(old, stage)],
        "clv_simple": [round(v, 2) for v in simple.tolist()],
        "clv_discounted": [round(v, 2) for v in discounted.tolist()],
        "churn_risk": risk,
        "cluster": [o[3] if o is not None else None for o in old],
        "computed_at": [now] * n,
        "next_review_at": next_review,
    }


def _nullable(values: np.ndarray) -> list[Optional[float]]:
    return [None if v != v else v for v in values.tolist()]


def _previous(session: Session, ids: Optional[Sequence[int]]) -> dict[int, tuple[str, str, Any, Optional[int]]]:
    """Stored (tier, stage, stage_since, cluster) by customer; stage_since as the
    driver returns it, to be written back unchanged (see `bulk`)."""
    t = CustomerMetrics.__table__
    query = select(t.c.customer_id, t.c.tier, t.c.stage, t.c.stage_since, t.c.cluster)
    queries = [query] if ids is None else [query.where(t.c.customer_id.in_(p)) for p in chunks(list(ids))]
    return {row[0]: row[1:] for row in bulk.fetch_rows(session.connection(), queries)}  # type: ignore[misc]


def _clean_population(session: Session, dirty: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """R/F/M values and intervals of stored buyers that are not being recomputed."""
    t = CustomerMetrics.__table__
    rows = bulk.fetch_columns(
        session.connection(),
        [select(t.c.customer_id, t.c.last_order_day, t.c.frequency, cast(t.c.monetary, Float),
                t.c.median_interval_days, t.c.order_count).where(t.c.order_count > 0)],
        6,
    )
    keep = rows[~np.isin(rows[:, 0].astype(np.int64), np.fromiter(dirty, dtype=np.int64, count=len(dirty)))]
    repeat = keep[(keep[:, 5] >= 2) & ~np.isnan(keep[:, 4])]
    return keep[:, 1], keep[:, 2], keep[:, 3], repeat[:, 4].tolist()


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
        table = gathered.table
        dirty = set(table.ids.tolist()) if dirty_ids is None else set(dirty_ids)
        previous = _previous(session, dirty_ids)

        # Population figures over clean stored rows plus fresh dirty facts.
        if kind == "full":
            r0 = f0 = m0 = np.array([], dtype=float)
            intervals0: list[float] = []
        else:
            r0, f0, m0, intervals0 = _clean_population(session, dirty)
        buyers = table.order_count > 0
        r_all = np.concatenate([r0, table.last_day[buyers]])
        f_all = np.concatenate([f0, table.frequency[buyers].astype(float)])
        m_all = np.concatenate([m0, table.monetary[buyers]])
        cuts = {
            "r": rfm.cut_points(r_all, settings.bins),
            "f": rfm.cut_points(f_all, settings.bins),
            "m": rfm.cut_points(m_all, settings.bins),
        }
        population = population_interval(
            intervals0 + table.median_interval[table.order_count >= 2].tolist(), settings
        )
        old_population = previous_run.population_interval_days if previous_run is not None else None

        read_done = time.perf_counter()
        product_stats = products.compute(session, now, gathered.counted_orders)
        products_done = time.perf_counter()
        columns = derive_columns(table, now, population, cuts, settings, previous)
        changes = _changes(columns, previous, now)
        derive_done = time.perf_counter()

        # -- writes: one transaction from here -----------------------------
        from ..config import WRITE_OPTIONS

        session.commit()  # end the read transaction; the write one takes the lock
        connection = session.connection(execution_options=WRITE_OPTIONS)
        _widen_sqlite_cache(connection)
        try:
            metrics = CustomerMetrics.__table__
            deleted_ids = select(Customer.id).where(Customer.deleted.is_(True))
            session.execute(delete(metrics).where(metrics.c.customer_id.in_(deleted_ids)))
            if dirty_ids is None:
                session.execute(delete(metrics))
            else:
                for part in chunks(dirty_ids):
                    session.execute(delete(metrics).where(metrics.c.customer_id.in_(part)))
            bulk.insert_columns(connection, metrics, columns)
            refreshed = len(table)

            restaged = 0
            if kind == "incremental" and old_population is not None and population != old_population:
                restaged = _restage_single_buyers(session, dirty, now, population, settings, changes)

            rescored = _rescore_clean(session, cuts, settings, now) if kind == "incremental" else 0
            bulk.insert_columns(connection, CustomerSegmentChange.__table__, changes)
            _sync_customer_tiers(session)
            products.write(session, connection, product_stats)
            session.add(
                AnalyticsRun(
                    kind=kind,
                    started_at=wall_start,
                    finished_at=datetime.utcnow(),
                    as_of=now,
                    customers_refreshed=refreshed + restaged,
                    rows_rescored=rescored,
                    excluded_orders=gathered.excluded_orders,
                    population_interval_days=population,
                    cuts=cuts,
                    settings=settings.as_dict(),
                )
            )
        finally:
            _restore_sqlite_cache(connection)
        session.commit()
    finished = time.perf_counter()
    phases = {"read": round(read_done - started, 2), "products": round(products_done - read_done, 2),
              "derive": round(derive_done - products_done, 2), "write": round(finished - derive_done, 2)}
    result = RefreshResult(
        kind, refreshed + restaged, rescored, gathered.excluded_orders, finished - started, population, phases
    )
    log.info("%s", result.summary())
    return result


def _widen_sqlite_cache(connection: Any) -> None:
    """Give SQLite's page cache room for the refresh's index updates.

    The default 2 MB cache makes every insert into customer_metrics' and
    customer_segment_changes' indexes at a million rows a read of a page it
    has just evicted. Pooled connections keep their PRAGMAs, so it is reset
    (by `_restore_sqlite_cache`) when the refresh ends, whatever happens.
    """
    if connection.dialect.name != "sqlite":
        return
    connection.info.setdefault("kefu_cache_size", connection.exec_driver_sql("PRAGMA cache_size").scalar())
    connection.exec_driver_sql(f"PRAGMA cache_size = -{REFRESH_SQLITE_CACHE_KIB}")


def _restore_sqlite_cache(connection: Any) -> None:
    if connection.dialect.name == "sqlite" and "kefu_cache_size" in connection.info:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(connection.info.pop('kefu_cache_size'))}")


def _changes(
    columns: dict[str, list[Any]], previous: dict[int, tuple[str, str, Any, Optional[int]]], now: datetime
) -> dict[str, list[Any]]:
    """Tier and stage changes against the stored rows, column-wise for `bulk.insert_columns`."""
    changes: dict[str, list[Any]] = {k: [] for k in ("customer_id", "field", "old_value", "new_value", "changed_at")}
    for cid, tier, stage in zip(columns["customer_id"], columns["tier"], columns["stage"]):
        old = previous.get(cid)
        old_tier, old_stage = (old[0], old[1]) if old is not None else (None, None)
        if old_tier != tier:
            _add_change(changes, cid, "tier", old_tier, tier, now)
        if old_stage != stage:
            _add_change(changes, cid, "stage", old_stage, stage, now)
    return changes


def _add_change(changes: dict[str, list[Any]], cid: int, field: str, old: Optional[str], new: str, now: datetime) -> None:
    for key, value in (("customer_id", cid), ("field", field), ("old_value", old), ("new_value", new), ("changed_at", now)):
        changes[key].append(value)


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
    changes: dict[str, list[Any]],
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
            _add_change(changes, row.customer_id, "stage", row.stage, stage, now)
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
