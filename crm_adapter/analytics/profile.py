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

from sqlalchemy import select
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


def customer_profile(
    session: Session, customer: Customer, now: datetime, settings: Settings, run: Any = _LOOK_UP
) -> CustomerProfileView:
    """``run``: the latest `AnalyticsRun` (or None when there is none) if the
    caller already has it — `CRM` keeps it for a minute — else looked up."""
    if run is _LOOK_UP:
        run = last_run(session)
    population = run.population_interval_days if run is not None else settings.default_interval_days
    row = session.get(CustomerMetrics, customer.id)
    if row is not None:
        return _view(
            customer.id, facts_of_row(row), now, population, settings,
            scores=(row.r_score, row.f_score, row.m_score), tier=row.tier,
            clvs=(float(row.clv_simple), float(row.clv_discounted)), cluster=row.cluster,
            computed_at=row.computed_at, stored=True,
        )
    facts = gather(session, [customer.id], to_day(now), settings).facts.get(customer.id, Facts())
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
        tier = customer.tier if run is None else "low"
    return _view(
        customer.id, facts, now, population, settings, scores=scores, tier=tier,
        clvs=clv.customer_clv(facts.frequency, facts.monetary, settings), cluster=None,
        computed_at=now, stored=False,
    )
