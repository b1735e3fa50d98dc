"""Care audiences on fixed dates, and the rules that filter them (crm_adapter.care*)."""
from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.care import CampaignRules, CareSettings, PlanSummary, variant_for
from crm_adapter.models import CareSend, Coupon, CustomerMetrics
from tests.crm_adapter import care_fixtures as make


def plan(crm: CRM, rules: CampaignRules, day: date, now: datetime | None = None) -> tuple[list, PlanSummary]:
    summary = PlanSummary()
    planned = [p for batch in crm.care.plan(rules, day, summary, now=now) for p in batch]
    return planned, summary


def ids(planned: list) -> set[int]:
    return {p.customer_id for p in planned}


BIRTHDAY = CampaignRules("birthday", "birthday", "marketing")


def test_birthdays_including_29_february(empty_crm: CRM) -> None:
    leapling = make.customer(empty_crm, birthday=date(1992, 2, 29))
    feb28 = make.customer(empty_crm, birthday=date(1990, 2, 28))
    mar1 = make.customer(empty_crm, birthday=date(1990, 3, 1))
    make.customer(empty_crm, birthday=date(1990, 6, 15))
    make.customer(empty_crm, birthday=None)

    # 2027 has no 29 February: the leapling is greeted on the 28th (docs/care.md says why).
    assert ids(plan(empty_crm, BIRTHDAY, date(2027, 2, 28))[0]) == {leapling, feb28}
    assert ids(plan(empty_crm, BIRTHDAY, date(2027, 3, 1))[0]) == {mar1}
    # 2028 has one: each on their own day.
    assert ids(plan(empty_crm, BIRTHDAY, date(2028, 2, 28))[0]) == {feb28}
    assert ids(plan(empty_crm, BIRTHDAY, date(2028, 2, 29))[0]) == {leapling}
    occasions = {p.occasion for p in plan(empty_crm, BIRTHDAY, date(2028, 2, 29))[0]}
    assert occasions == {"birthday:2028"}


def test_lunar_festivals_across_two_years(empty_crm: CRM) -> None:
    a = make.customer(empty_crm)
    rules = CampaignRules("festivals", "holiday", "marketing",
                          {"lunar": ["spring_festival", "lantern", "dragon_boat", "mid_autumn"]})
    expected = {
        date(2026, 2, 17): "spring_festival:2026", date(2027, 2, 6): "spring_festival:2027",
        date(2026, 3, 3): "lantern:2026", date(2027, 2, 20): "lantern:2027",
        date(2026, 6, 19): "dragon_boat:2026", date(2027, 6, 9): "dragon_boat:2027",
        date(2026, 9, 25): "mid_autumn:2026", date(2027, 9, 15): "mid_autumn:2027",
    }
    for day, occasion in expected.items():
        planned, _ = plan(empty_crm, rules, day)
        assert [(p.customer_id, p.occasion) for p in planned] == [(a, occasion)], day
        assert planned[0].context["holiday"]
    for day in (date(2026, 2, 16), date(2026, 2, 18), date(2027, 2, 17), date(2026, 10, 1)):
        assert plan(empty_crm, rules, day)[0] == [], day


def test_statutory_holidays_and_an_unknown_year(empty_crm: CRM, caplog: pytest.LogCaptureFixture) -> None:
    a = make.customer(empty_crm)
    rules = CampaignRules("national", "holiday", "marketing", {"statutory": ["national_day", "labour_day"]})
    planned, _ = plan(empty_crm, rules, date(2026, 10, 1))
    assert [(p.customer_id, p.occasion, p.context["holiday"]) for p in planned] == [(a, "national_day:2026", "国庆节")]
    assert plan(empty_crm, rules, date(2026, 10, 2))[0] == []  # the break's first day only
    assert plan(empty_crm, rules, date(2026, 5, 1))[0][0].occasion == "labour_day:2026"
    with caplog.at_level(logging.WARNING):
        assert plan(empty_crm, rules, date(2031, 10, 1))[0] == []  # no data for 2031: skipped, no crash
    assert "no statutory holidays for 2031" in caplog.text


def test_repurchase_interval_passed(empty_crm: CRM) -> None:
    food = make.product(empty_crm, category="pet", repurchase_days=30)
    durable = make.product(empty_crm, category="digital", repurchase_days=None)
    day = date(2026, 5, 31)
    noon = datetime(2026, 5, 31, 4)
    due = make.customer(empty_crm)
    make.order(empty_crm, due, food, noon - timedelta(days=30))
    early = make.customer(empty_crm)
    make.order(empty_crm, early, food, noon - timedelta(days=10))
    own = make.customer(empty_crm)  # buys every 10 days: due after 10, not the product's 30
    make.order(empty_crm, own, food, noon - timedelta(days=20))
    make.order(empty_crm, own, food, noon - timedelta(days=10))
    stale = make.customer(empty_crm)  # was due 40 days ago: outside the look-back
    make.order(empty_crm, stale, food, noon - timedelta(days=70))
    gadget = make.customer(empty_crm)
    make.order(empty_crm, gadget, durable, noon - timedelta(days=300))
    cancelled = make.customer(empty_crm)
    make.order(empty_crm, cancelled, food, noon - timedelta(days=30), status="cancelled")

    rules = CampaignRules("repurchase", "repurchase", "marketing", {"lookback_days": 14})
    planned, _ = plan(empty_crm, rules, day)
    assert ids(planned) == {due, own}
    assert {p.context["interval_days"] for p in planned} == {30, 10}


def _metrics(crm: CRM, customer_id: int, stage: str, since: datetime) -> None:
    with Session(crm.engine, future=True) as session, session.begin():
        session.add(CustomerMetrics(
            customer_id=customer_id, order_count=2, lifetime_spend=100, frequency=2, monetary=100,
            complaints_recent=0, csat_count=0, tier="low", stage=stage, stage_since=since,
            clv_simple=0, clv_discounted=0, computed_at=since))


def test_entering_at_risk(empty_crm: CRM) -> None:
    day = date(2026, 5, 31)
    fresh = make.customer(empty_crm)
    _metrics(empty_crm, fresh, "at_risk", datetime(2026, 5, 30, 20))
    old = make.customer(empty_crm)
    _metrics(empty_crm, old, "at_risk", datetime(2026, 4, 1))
    loyal = make.customer(empty_crm)
    _metrics(empty_crm, loyal, "loyal", datetime(2026, 5, 30))
    rules = CampaignRules("win_back", "win_back", "marketing", {"lookback_days": 7})
    planned, _ = plan(empty_crm, rules, day)
    assert [(p.customer_id, p.occasion) for p in planned] == [(fresh, "at_risk:20260531")]  # 20:00 UTC is the 31st in China


def test_complaint_resolved_n_days_ago(empty_crm: CRM) -> None:
    day = date(2026, 5, 31)
    a, b, c = (make.customer(empty_crm, marketing=False) for _ in range(3))
    t_a = make.complaint(empty_crm, a, created=datetime(2026, 5, 20), resolved_at=datetime(2026, 5, 28, 2))
    make.complaint(empty_crm, b, created=datetime(2026, 5, 20), resolved_at=datetime(2026, 5, 29, 2))
    make.complaint(empty_crm, c, created=datetime(2026, 5, 20), resolved_at=None, status="open")
    rules = CampaignRules("followup", "complaint_followup", "service", {"after_days": 3, "lookback_days": 0})
    planned, _ = plan(empty_crm, rules, day)
    # Service purpose: no marketing opt-in needed.
    assert [(p.customer_id, p.occasion, p.context["ticket_number"]) for p in planned] == [(a, f"complaint:{t_a}", t_a)]


def test_points_and_coupon_expiry(empty_crm: CRM) -> None:
    day = date(2026, 5, 31)
    soon = make.customer(empty_crm, points=800, points_expiring=500, points_expire_at=date(2026, 6, 20))
    make.customer(empty_crm, points=800, points_expiring=500, points_expire_at=date(2026, 7, 20))
    make.customer(empty_crm, points=800, points_expiring=0, points_expire_at=date(2026, 6, 20))
    rules = CampaignRules("points", "points_expiry", "marketing", {"days_before": 30})
    planned, _ = plan(empty_crm, rules, day)
    assert [(p.customer_id, p.occasion, p.context["points_expiring"]) for p in planned] == [(soon, "points:20260620", 500)]

    holder, user = make.customer(empty_crm), make.customer(empty_crm)
    with Session(empty_crm.engine, future=True) as session, session.begin():
        session.add(Coupon(code="C1", customer_id=holder, title="满减券", amount=20, min_spend=99,
                           expires_at=datetime(2026, 6, 2, 15, 59), created_at=datetime(2026, 5, 1)))
        session.add(Coupon(code="C2", customer_id=user, title="满减券", amount=20, min_spend=99,
                           expires_at=datetime(2026, 6, 2, 15, 59), created_at=datetime(2026, 5, 1),
                           used_at=datetime(2026, 5, 2)))
        session.add(Coupon(code="C3", customer_id=user, title="满减券", amount=20, min_spend=99,
                           expires_at=datetime(2026, 6, 20), created_at=datetime(2026, 5, 1)))
    rules = CampaignRules("coupons", "coupon_expiry", "marketing", {"days_before": 3})
    planned, _ = plan(empty_crm, rules, day)
    assert [(p.customer_id, p.occasion, p.context["expire_date"]) for p in planned] == [(holder, "coupon:C1", "6月2日")]


def test_upgrade_nudge(empty_crm: CRM) -> None:
    close = make.customer(empty_crm, member_level="普通会员", total_spent=1800)
    far = make.customer(empty_crm, member_level="普通会员", total_spent=1400)
    gold = make.customer(empty_crm, member_level="银卡", total_spent=7700)
    top = make.customer(empty_crm, member_level="钻石", total_spent=30000)
    rules = CampaignRules("upgrade", "upgrade_nudge", "marketing", {"max_gap": 500})
    planned, _ = plan(empty_crm, rules, date(2026, 5, 31))
    assert {(p.customer_id, p.context["next_level"], p.context["missing"]) for p in planned} == {
        (close, "银卡", "200"), (gold, "金卡", "300")}
    assert far not in ids(planned) and top not in ids(planned)


def test_opted_out_and_unconsented_customers_are_excluded(empty_crm: CRM) -> None:
    yes = make.customer(empty_crm, birthday=date(1990, 5, 31))
    never = make.customer(empty_crm, birthday=date(1990, 5, 31), marketing=False)
    quit_ = make.customer(empty_crm, birthday=date(1990, 5, 31))
    make.refuse(empty_crm, quit_, datetime(2021, 1, 1))
    planned, summary = plan(empty_crm, BIRTHDAY, date(2026, 5, 31))
    assert ids(planned) == {yes}
    assert summary.skipped["no_consent"] == 2 and never not in ids(planned)


def test_weekly_cap_counts_marketing_only(empty_crm: CRM, clock) -> None:
    empty_crm.care.settings = CareSettings(weekly_cap=2)
    now = datetime(2026, 5, 31, 2)
    busy = make.customer(empty_crm, birthday=date(1990, 5, 31))
    calm = make.customer(empty_crm, birthday=date(1990, 5, 31))
    with Session(empty_crm.engine, future=True) as session, session.begin():
        for n, days_ago in enumerate((1, 6)):
            session.add(CareSend(campaign=f"earlier{n}", customer_id=busy, occasion="x", variant="A",
                                 purpose="marketing", status="delivered", context={},
                                 next_attempt_at=now, expires_at=now, created_at=now - timedelta(days=days_ago),
                                 updated_at=now))
        session.add(CareSend(campaign="old", customer_id=calm, occasion="x", variant="A", purpose="marketing",
                             status="delivered", context={}, next_attempt_at=now, expires_at=now,
                             created_at=now - timedelta(days=8), updated_at=now))
    planned, summary = plan(empty_crm, BIRTHDAY, date(2026, 5, 31), now=now)
    assert ids(planned) == {calm} and summary.skipped["capped"] == 1
    # A service message is exempt from the cap.
    make.complaint(empty_crm, busy, created=datetime(2026, 5, 20), resolved_at=datetime(2026, 5, 28, 2))
    service = CampaignRules("followup", "complaint_followup", "service", {"after_days": 3})
    assert ids(plan(empty_crm, service, date(2026, 5, 31), now=now)[0]) == {busy}
    # Within one run the cap counts what this run already planned (two coupons, cap 1).
    empty_crm.care.settings = CareSettings(weekly_cap=1)
    with Session(empty_crm.engine, future=True) as session, session.begin():
        for code in ("K1", "K2"):
            session.add(Coupon(code=code, customer_id=calm, title="券", amount=5, min_spend=0,
                               expires_at=datetime(2026, 6, 1), created_at=datetime(2026, 5, 1)))
    coupons = CampaignRules("coupons", "coupon_expiry", "marketing", {"days_before": 3})
    planned, summary = plan(empty_crm, coupons, date(2026, 5, 31), now=now)
    assert [p.occasion for p in planned] == ["coupon:K1"] and summary.skipped["capped"] == 1


def test_ab_split_is_deterministic_and_even() -> None:
    first = [variant_for("birthday", cid, ("A", "B")) for cid in range(1, 1001)]
    again = [variant_for("birthday", cid, ("A", "B")) for cid in range(1, 1001)]
    assert first == again
    assert 450 <= first.count("A") <= 550
    other = [variant_for("festival", cid, ("A", "B")) for cid in range(1, 1001)]
    assert other != first  # the split is per campaign
    assert {variant_for("birthday", cid, ("A",)) for cid in range(1, 50)} == {"A"}


def test_enqueue_is_once_per_occasion_even_concurrently(empty_crm: CRM) -> None:
    for _ in range(30):
        make.customer(empty_crm, birthday=date(1990, 5, 31))
    planned, _ = plan(empty_crm, BIRTHDAY, date(2026, 5, 31))
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(empty_crm.care.enqueue(BIRTHDAY, planned))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Session(empty_crm.engine, future=True) as session:
        assert session.execute(select(func.count()).select_from(CareSend)).scalar_one() == 30
    # A second day's plan of the same occasion finds them logged.
    again, summary = plan(empty_crm, BIRTHDAY, date(2026, 5, 31))
    assert again == [] and summary.skipped["already"] == 30
