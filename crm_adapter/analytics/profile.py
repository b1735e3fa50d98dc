"""One customer's profile: from the stored row, or computed on the fly.

Scores and tier come from the last refresh (they are population-relative);
stage, recency and churn risk are re-derived for *now* from the stored facts
(cheap, and the desk should not see yesterday's "new" for a customer whose
window closed this morning). A customer no refresh has covered yet is
computed from their own history with the last run's cut points and
population interval (or, before any run, no scores and the tier the CRM
already holds for them).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .. import policy
from ..models import Customer, CustomerMetrics
from ..views import CustomerProfileView
from . import clv, lifecycle, rfm
from .daynum import from_day, to_day
from .facts import facts_of_row, gather
from .lifecycle import STAGE_LABELS, TIER_LABELS, Facts
from .refresh import last_run
from .settings import Settings


def _view(
    cid: int, facts: Facts, now: datetime, population: float, settings: Settings, *,
    scores: tuple[Optional[int], Optional[int], Optional[int]], tier: str, clvs: tuple[float, float],
    cluster: Optional[int], computed_at: datetime, stored: bool,
) -> CustomerProfileView:
    now_day = to_day(now)
    stage = lifecycle.stage(facts, now_day, population, settings)
    return CustomerProfileView(
        customer_id=cid,
        tier=tier,
        tier_label=TIER_LABELS[tier],
        stage=stage,
        stage_label=STAGE_LABELS[stage],
        recency_days=round(now_day - facts.last_day, 1) if facts.last_day is not None else None,
        frequency=facts.frequency,
        monetary=facts.monetary,
        r_score=scores[0],
        f_score=scores[1],
        m_score=scores[2],
        order_count=facts.order_count,
        last_order_at=policy.to_china(from_day(facts.last_day)),
        clv_simple=clvs[0],
        clv_discounted=clvs[1],
        churn_risk=lifecycle.churn_risk(facts, now_day, population, settings),
        churn_reasons=lifecycle.churn_reasons(facts, now_day, population, settings),
        cluster=cluster,
        computed_at=policy.to_china(computed_at),  # type: ignore[arg-type]
        stored=stored,
    )


_LOOK_UP = object()

_customers = Customer.__table__
_metrics = CustomerMetrics.__table__
#: One statement for the hot path: the live customer and their stored row
#: (LEFT JOIN: no row yet is computed on the fly), through Core, because the
#: ORM's identity map and two round trips were most of a 2.7 ms lookup.
_LOOKUP = (
    select(
        _customers.c.tier.label("customer_tier"),
        _metrics.c.customer_id,
        _metrics.c.order_count, _metrics.c.first_order_day, _metrics.c.last_order_day, _metrics.c.lifetime_spend,
        _metrics.c.median_interval_days, _metrics.c.frequency, _metrics.c.monetary, _metrics.c.window_oldest_day,
        _metrics.c.complaints_recent, _metrics.c.complaints_oldest_day, _metrics.c.csat_avg, _metrics.c.csat_count,
        _metrics.c.csat_oldest_day, _metrics.c.r_score, _metrics.c.f_score, _metrics.c.m_score, _metrics.c.tier,
        _metrics.c.clv_simple, _metrics.c.clv_discounted, _metrics.c.cluster, _metrics.c.computed_at,
    )
    .select_from(_customers.outerjoin(_metrics, _metrics.c.customer_id == _customers.c.id))
    .where(_customers.c.id == bindparam("cid"), _customers.c.deleted.is_(False))
)


def live_customer_profile(
    session: Session, customer_id: int, now: datetime, settings: Settings, run: Any = _LOOK_UP
) -> Optional[CustomerProfileView]:
    """The profile of a live customer, None for an unknown or deleted one (see `customer_profile`)."""
    row = session.connection().execute(_LOOKUP, {"cid": customer_id}).first()
    if row is None:
        return None
    if run is _LOOK_UP:
        run = last_run(session)
    population = run.population_interval_days if run is not None else settings.default_interval_days
    if row.customer_id is not None:
        return _view(
            customer_id, facts_of_row(row), now, population, settings,
            scores=(row.r_score, row.f_score, row.m_score), tier=row.tier,
            clvs=(float(row.clv_simple), float(row.clv_discounted)), cluster=row.cluster,
            computed_at=row.computed_at, stored=True,
        )
    return _on_the_fly(session, customer_id, row.customer_tier, now, population, settings, run)


def customer_profile(
    session: Session, customer: Customer, now: datetime, settings: Settings, run: Any = _LOOK_UP
) -> CustomerProfileView:
    """``run``: the latest `AnalyticsRun` (or None when there is none) if the
    caller already has it — `CRM` keeps it for a minute — else looked up."""
    profile = live_customer_profile(session, customer.id, now, settings, run)
    if profile is None:  # deleted in this very transaction: what the caller holds still counts
        if run is _LOOK_UP:
            run = last_run(session)
        population = run.population_interval_days if run is not None else settings.default_interval_days
        return _on_the_fly(session, customer.id, customer.tier, now, population, settings, run)
    return profile


def _on_the_fly(
    session: Session, customer_id: int, customer_tier: str, now: datetime, population: float,
    settings: Settings, run: Any,
) -> CustomerProfileView:
    facts = gather(session, [customer_id], to_day(now), settings).facts.get(customer_id, Facts())
    if run is not None and facts.order_count > 0:
        cuts = run.cuts
        scores = (
            rfm.score(facts.last_day, cuts["r"]),  # type: ignore[arg-type]
            rfm.score(facts.frequency, cuts["f"]),
            rfm.score(facts.monetary, cuts["m"]),
        )
        tier = rfm.tier(*scores, settings.core_threshold, settings.potential_threshold)
    else:
        scores = (None, None, None)
        tier = customer_tier if run is None else "low"
    return _view(
        customer_id, facts, now, population, settings, scores=scores, tier=tier,
        clvs=clv.customer_clv(facts.frequency, facts.monetary, settings), cluster=None,
        computed_at=now, stored=False,
    )
