"""Complaint KPIs against hand-computed values on small fixed data (pure functions)."""
from __future__ import annotations

from datetime import datetime, timedelta

from crm_adapter.analytics.complaint_kpis import (
    ComplaintFact,
    automation,
    csat_distribution,
    csat_trend,
    first_response,
    iso_week,
    nps,
    p90,
    per_category_per_week,
    reopen_rate,
    resolution,
    sla_breach_rate,
)

T0 = datetime(2026, 11, 16, 2, 0)  # Monday 10:00 China time, ISO week 2026-W47
H = timedelta(hours=1)

FACTS = [
    # created, category, sla due, first response, resolved, reopened
    ComplaintFact(T0, "logistics", T0 + 24 * H, T0 + 1 * H, T0 + 10 * H, 0, "resolved"),
    ComplaintFact(T0, "logistics", T0 + 4 * H, T0 + 2 * H, T0 + 30 * H, 1, "resolved"),   # late
    ComplaintFact(T0 + 24 * H, "quality", T0 + 48 * H, T0 + 27 * H, None, 0, "open"),      # late by now
    ComplaintFact(T0 + 7 * 24 * H, "quality", T0 + 8 * 24 * H, None, None, 0, "open"),     # next week, in time
]
NOW = T0 + 7 * 24 * H + 1 * H


def test_weeks_are_iso_weeks_in_china_time() -> None:
    assert iso_week(T0) == "2026-W47"
    assert iso_week(datetime(2026, 11, 22, 16, 30)) == "2026-W48"  # Monday 00:30 in China


def test_complaints_per_category_per_week() -> None:
    assert per_category_per_week(FACTS) == {"2026-W47": {"logistics": 2, "quality": 1},
                                            "2026-W48": {"quality": 1}}


def test_first_response_and_resolution_median_and_p90() -> None:
    # first responses 1, 2, 3 h -> median 2, p90 = ceil(2.7) = 3rd value = 3
    assert first_response(FACTS) == {"count": 3, "median_h": 2.0, "p90_h": 3.0}
    # resolutions 10, 30 h -> median 20, p90 = ceil(1.8) = 2nd value = 30
    assert resolution(FACTS) == {"count": 2, "median_h": 20.0, "p90_h": 30.0}
    assert p90(list(range(1, 11))) == 9 and p90([]) is None


def test_sla_breach_and_reopen_rates() -> None:
    assert sla_breach_rate(FACTS, NOW) == 0.5          # 2 of 4
    assert reopen_rate(FACTS) == 0.5                   # of the 2 ever resolved, 1 reopened
    assert sla_breach_rate([], NOW) is None and reopen_rate(FACTS[2:]) is None


def test_csat_distribution_and_trend() -> None:
    d = csat_distribution([5, 4, 4, 1, 3])
    assert d["counts"] == {"1": 1, "2": 0, "3": 1, "4": 2, "5": 1}
    assert (d["responses"], d["average"], d["satisfied_rate"]) == (5, 3.4, 0.6)
    assert csat_trend([(T0, 5), (T0 + H, 3), (T0 + 7 * 24 * H, 2)]) == {"2026-W47": 4.0, "2026-W48": 2.0}
    assert csat_distribution([])["average"] is None


def test_nps() -> None:
    # promoters 10, 9, 9 (3); passives 8, 7 (2); detractors 6, 0 (2): (3 - 2) / 7 = 14.3
    assert nps([10, 9, 9, 8, 7, 6, 0]) == 14.3
    assert nps([]) is None and nps([0]) == -100.0


def test_escalation_and_automation_rates() -> None:
    result = automation({"a", "b", "c", "d"}, {"b", "z"})  # z escalated but wrote outside the period
    assert result == {"conversations": 4, "escalated": 1, "escalation_rate": 0.25, "automation_rate": 0.75}
    assert automation(set(), {"b"})["automation_rate"] is None


def test_topics_count_once_per_complaint_and_flag_rising_words() -> None:
    from crm_adapter.analytics.complaint_topics import compare, keyword_counts

    this_week = keyword_counts(["快递丢了快递丢了", "快递太慢", "快递员态度差", "包装破损"])
    last_week = keyword_counts(["快递太慢", "包装破损", "包装破损", "包装破损"])
    assert this_week["快递"] == 3 and "了" not in this_week
    rows = {r["word"]: r for r in compare(this_week, last_week)}
    assert rows["快递"] == {"word": "快递", "this_week": 3, "last_week": 1, "rising": True}
    assert rows["包装"]["rising"] is False  # 1 this week, 3 last week
