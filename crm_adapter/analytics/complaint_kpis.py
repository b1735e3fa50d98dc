"""Complaint-handling KPIs for managers: pure functions over plain records,
plus one reader that fetches those records for a period.

Why pure functions: every figure can be checked against a hand computation
on a handful of records (tests/crm_adapter/test_complaint_kpis.py), and the
same functions serve the /desk/kpis page, its JSON and the weekly report.
Definitions (docs/complaint-review.md repeats them with their reasons):

* weeks are ISO weeks in China time (``2026-W47``);
* durations are hours; the median is the usual one (mean of the middle two),
  p90 is the nearest-rank 90th percentile (the smallest value with at least
  90 % of values at or below it);
* time to first response: creation to ``first_response_at`` (the first
  assignment or status change by staff; internal notes do not count);
  time to resolution: creation to ``resolved_at``;
* SLA breach rate: of the complaints created in the period, the share
  resolved after ``sla_due_at`` or still unresolved past it;
* reopen rate: of the period's complaints that were resolved or closed at
  least once, the share reopened at least once;
* escalation rate: escalated conversations / conversations; bot automation
  rate: 1 - that.  A conversation is one sender id with at least one
  customer message in the period (Rasa's event broker table); an escalated
  conversation is one sender id with an escalation created in the period.

Rates are fractions (0.25 = 25 %) and None when their denominator is zero.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from statistics import mean, median
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from ..models import Complaint, CsatRating, Escalation, NpsResponse
from ..policy import to_china


@dataclass(frozen=True)
class ComplaintFact:
    """What the KPIs need of one complaint (naive UTC times, as stored)."""

    created_at: datetime
    category: str
    sla_due_at: datetime
    first_response_at: Optional[datetime] = None
    resolved_at: Optional[datetime] = None
    reopened_count: int = 0
    status: str = "open"


def iso_week(moment: datetime) -> str:
    """The ISO week (China time) of a stored naive-UTC moment: ``2026-W47``."""
    year, week, _ = to_china(moment).isocalendar()
    return f"{year}-W{week:02d}"


def rate(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def p90(values: Sequence[float]) -> Optional[float]:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def _hours(start: datetime, end: Optional[datetime]) -> Optional[float]:
    return None if end is None else (end - start).total_seconds() / 3600


def duration_summary(values: Iterable[Optional[float]]) -> dict[str, Optional[float]]:
    """Median and p90 hours of the known values, and how many there were."""
    known = [v for v in values if v is not None]
    return {"count": len(known), "median_h": round(median(known), 2) if known else None,
            "p90_h": round(p90(known), 2) if known else None}  # type: ignore[arg-type]


def per_category_per_week(facts: Iterable[ComplaintFact]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for f in facts:
        table[iso_week(f.created_at)][f.category] += 1
    return {week: dict(sorted(counts.items())) for week, counts in sorted(table.items())}


def first_response(facts: Iterable[ComplaintFact]) -> dict[str, Optional[float]]:
    return duration_summary(_hours(f.created_at, f.first_response_at) for f in facts)


def resolution(facts: Iterable[ComplaintFact]) -> dict[str, Optional[float]]:
    return duration_summary(_hours(f.created_at, f.resolved_at) for f in facts)


def breached(f: ComplaintFact, now: datetime) -> bool:
    if f.resolved_at is not None:
        return f.resolved_at > f.sla_due_at
    return f.sla_due_at < now


def sla_breach_rate(facts: Sequence[ComplaintFact], now: datetime) -> Optional[float]:
    return rate(sum(breached(f, now) for f in facts), len(facts))


def reopen_rate(facts: Sequence[ComplaintFact]) -> Optional[float]:
    ever_done = [f for f in facts if f.resolved_at is not None or f.reopened_count > 0]
    return rate(sum(f.reopened_count > 0 for f in ever_done), len(ever_done))


def csat_distribution(scores: Iterable[int]) -> dict[str, Any]:
    counts = Counter(scores)
    total = sum(counts.values())
    return {"counts": {str(s): counts.get(s, 0) for s in range(1, 6)}, "responses": total,
            "average": round(sum(s * n for s, n in counts.items()) / total, 2) if total else None,
            "satisfied_rate": rate(counts.get(4, 0) + counts.get(5, 0), total)}


def csat_trend(ratings: Iterable[tuple[datetime, int]]) -> dict[str, Optional[float]]:
    """Average CSAT per ISO week."""
    weeks: dict[str, list[int]] = defaultdict(list)
    for at, score in ratings:
        weeks[iso_week(at)].append(score)
    return {week: round(mean(scores), 2) for week, scores in sorted(weeks.items())}


def nps(scores: Sequence[int]) -> Optional[float]:
    """% promoters (9-10) - % detractors (0-6), -100..100."""
    if not scores:
        return None
    promoters = sum(s >= 9 for s in scores)
    detractors = sum(s <= 6 for s in scores)
    return round(100 * (promoters - detractors) / len(scores), 1)


def automation(conversations: set[str], escalated: set[str]) -> dict[str, Any]:
    """Escalation and bot automation rates over the period's conversations (sender ids)."""
    escalated_here = escalated & conversations
    escalation = rate(len(escalated_here), len(conversations))
    return {"conversations": len(conversations), "escalated": len(escalated_here),
            "escalation_rate": escalation,
            "automation_rate": None if escalation is None else round(1 - escalation, 4)}


# -- reading a period --------------------------------------------------------

def complaint_facts(session: Session, start: datetime, end: datetime) -> list[ComplaintFact]:
    rows = session.execute(
        select(Complaint.created_at, Complaint.category, Complaint.sla_due_at, Complaint.first_response_at,
               Complaint.resolved_at, Complaint.reopened_count, Complaint.status)
        .where(Complaint.created_at >= start, Complaint.created_at < end)
    ).all()
    return [ComplaintFact(*r[:5], reopened_count=r[5] or 0, status=r[6]) for r in rows]


def category_week_counts(session: Session, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """`per_category_per_week` counted by the database (a GROUP BY instead of every row in Python)."""
    from datetime import date

    from sqlalchemy import Integer, cast, func

    from .daynum import day_number

    # Weeks since Monday 1970-01-05 00:00 China time (1970-01-01 was a Thursday).
    weeks = (day_number(Complaint.created_at) + 8 / 24 - 4) / 7
    # Whole weeks: SQLite's CAST truncates, PostgreSQL's rounds, so floor() there.
    week = cast(func.floor(weeks) if session.get_bind().dialect.name == "postgresql" else weeks, Integer)
    rows = session.execute(select(week, Complaint.category, func.count())
                           .where(Complaint.created_at >= start, Complaint.created_at < end)
                           .group_by(week, Complaint.category)).all()
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for index, category, n in rows:
        year, number, _ = (date(1970, 1, 5) + timedelta(days=7 * int(index))).isocalendar()
        table[f"{year}-W{number:02d}"][category] = n
    return {w: dict(sorted(c.items())) for w, c in sorted(table.items())}


def conversation_senders(events_url: Optional[str], start: datetime, end: datetime) -> Optional[set[str]]:
    """Sender ids with a customer message in ``[start, end)`` from Rasa's events table; None without one."""
    if not events_url:
        return None
    lo = start.replace(tzinfo=timezone.utc).timestamp()
    hi = end.replace(tzinfo=timezone.utc).timestamp()
    engine = create_engine(events_url, future=True)
    senders: set[str] = set()
    try:
        with engine.connect() as conn:
            for sender, data in conn.execute(text("SELECT sender_id, data FROM events")):
                try:
                    event = json.loads(data) if isinstance(data, str) else data
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") == "user" \
                        and lo <= float(event.get("timestamp") or 0) < hi:
                    senders.add(sender)
    finally:
        engine.dispose()
    return senders


def complaint_kpis(session: Session, start: datetime, end: datetime, now: datetime,
                   events_url: Optional[str] = None) -> dict[str, Any]:
    """Every complaint-handling figure for ``[start, end)`` (naive UTC) as JSON-ready data."""
    facts = complaint_facts(session, start, end)
    ratings = session.execute(select(CsatRating.created_at, CsatRating.score)
                              .where(CsatRating.created_at >= start, CsatRating.created_at < end)).all()
    nps_scores = list(session.execute(select(NpsResponse.score).where(
        NpsResponse.created_at >= start, NpsResponse.created_at < end)).scalars())
    escalated = set(session.execute(select(Escalation.sender_id).where(
        Escalation.created_at >= start, Escalation.created_at < end)).scalars())
    senders = conversation_senders(events_url, start, end)
    return {
        "complaints": len(facts),
        "per_category_per_week": per_category_per_week(facts),
        "first_response": first_response(facts),
        "resolution": resolution(facts),
        "sla_breach_rate": sla_breach_rate(facts, now),
        "reopen_rate": reopen_rate(facts),
        "csat": {**csat_distribution(s for _, s in ratings), "trend": csat_trend(ratings)},
        "nps": {"score": nps(nps_scores), "responses": len(nps_scores)},
        "automation": automation(senders, escalated) if senders is not None else
        {"conversations": None, "escalated": len(escalated), "escalation_rate": None, "automation_rate": None},
    }


def week_bounds(week: str) -> tuple[datetime, datetime]:
    """``2026-W47`` as [Monday 00:00, next Monday 00:00) China time, in stored form (naive UTC)."""
    from datetime import date

    from ..errors import InvalidInput
    from ..policy import china_day_start

    try:
        year_s, week_s = week.strip().split("-W")
        monday = date.fromisocalendar(int(year_s), int(week_s), 1)
    except (ValueError, AttributeError):
        raise InvalidInput("周格式不正确，应为 YYYY-Www，例如 2026-W47。") from None
    start = china_day_start(monday)
    return start, start + timedelta(days=7)


def current_week(now: datetime) -> str:
    return iso_week(now)


def dashboard(crm: Any, week: str, events_url: Optional[str] = None, weeks_back: int = 8) -> dict[str, Any]:
    """Everything /desk/kpis, /desk/api/kpis and the weekly report show, for one ISO week.

    The per-category and CSAT trends cover the ``weeks_back`` weeks ending
    with it; the customer KPIs (retention, repurchase, churn, CLV by tier)
    come from `crm_adapter.analytics.kpis` over the same week.
    """
    from dataclasses import asdict

    from .complaint_topics import topics

    start, end = week_bounds(week)
    trend_start = start - timedelta(days=7 * (weeks_back - 1))
    now = crm._now()
    with crm._read() as session:
        figures = complaint_kpis(session, start, end, now, events_url)
        per_week = category_week_counts(session, trend_start, end)
        ratings = session.execute(select(CsatRating.created_at, CsatRating.score)
                                  .where(CsatRating.created_at >= trend_start, CsatRating.created_at < end)).all()
        keywords = topics(session, start)
    customer = asdict(crm.kpis(start, end))
    for name in ("start", "end"):
        customer[name] = customer[name].isoformat()
    return {"week": week, "start": to_china(start).isoformat(), "end": to_china(end).isoformat(),
            **figures,
            "per_category_per_week": per_week,
            "csat_trend": csat_trend(ratings),
            "customer": customer, "topics": keywords}
