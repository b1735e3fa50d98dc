"""Customer analytics: exact small histories, properties, incremental = full, bad data."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_adapter import CRM, errors
from crm_adapter.analytics import clv, lifecycle, rfm
from crm_adapter.analytics.daynum import to_day
from crm_adapter.analytics.lifecycle import Facts
from crm_adapter.analytics.settings import Settings
from crm_adapter.models import AnalyticsRun, Customer, CustomerMetrics, Order

NOW = datetime(2026, 6, 1, 12, 0, 0)
S = Settings()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def shop(tmp_path: Path, clock: Clock) -> Iterator[CRM]:
    crm = CRM(f"sqlite:///{tmp_path / 'a.sqlite3'}", clock=clock)
    crm.create_schema()
    yield crm
    crm.dispose()


_counter = iter(range(1, 10**9))


def add_customer(crm: CRM, cid: int, deleted: bool = False) -> None:
    with Session(crm.engine, future=True) as s:
        s.add(Customer(id=cid, name="客户", created_at=NOW - timedelta(days=1000), deleted=deleted))
        s.commit()


def add_order(crm: CRM, cid: int, days_ago: float, total: float, status: str = "delivered") -> None:
    n = next(_counter)
    when = NOW - timedelta(days=days_ago)
    with Session(crm.engine, future=True) as s:
        s.add(Order(order_number=f"{n:012d}", customer_id=cid, status=status, total=total,
                    address="上海市浦东新区张江路1号", created_at=when, updated_at=when))
        s.commit()


def metrics(crm: CRM, cid: int) -> CustomerMetrics:
    with Session(crm.engine, future=True) as s:
        row = s.get(CustomerMetrics, cid)
        s.expunge_all()
        return row


# -- exact expectations ------------------------------------------------------


def test_small_history_exact(shop: CRM) -> None:
    for cid in (1, 2, 3, 4):
        add_customer(shop, cid)
    # 1: loyal repeat buyer, every 30 days; 2: one order long ago; 3: never bought;
    # 4: two orders, the second cancelled (does not count).
    for d in (10, 40, 70, 100, 130, 160, 400):
        add_order(shop, 1, d, 200.0)
    add_order(shop, 2, 500, 50.0)
    add_order(shop, 4, 5, 80.0)
    add_order(shop, 4, 2, 999.0, status="cancelled")
    result = shop.refresh_analytics()
    assert result.kind == "full" and result.customers_refreshed == 4

    one = metrics(shop, 1)
    assert (one.order_count, one.frequency, one.monetary) == (7, 6, 1200.0)
    assert one.median_interval_days == pytest.approx(30.0)
    assert one.stage == "loyal"
    # Buyers 2, 1, 4 (customer 3 never bought): score = 1 + floor(5 x values below / 3).
    assert (one.r_score, one.f_score, one.m_score, one.tier) == (2, 4, 4, "potential")
    # simple CLV = 6/yr x 200 x 3 years; discounted = 0.3 x 1200 x sum(0.8^t / 1.1^t, t=1..5)
    assert one.clv_simple == pytest.approx(3600.0)
    assert one.clv_discounted == pytest.approx(round(sum(0.3 * 1200 * 0.8**t / 1.1**t for t in range(1, 6)), 2))

    two = metrics(shop, 2)
    assert two.stage == "churned" and two.frequency == 0 and two.clv_simple == 0.0
    assert (two.r_score, two.f_score, two.m_score, two.tier) == (1, 1, 1, "low")
    assert metrics(shop, 3).stage == "potential" and metrics(shop, 3).churn_risk is None
    four = metrics(shop, 4)
    assert four.order_count == 1 and four.stage == "new" and four.monetary == 80.0
    assert (four.r_score, four.f_score, four.m_score, four.tier) == (4, 2, 2, "potential")

    profile = shop.customer_profile(1)
    assert profile.stored and profile.stage_label == "忠诚客户" and profile.tier_label == "潜力客户"
    assert profile.recency_days == pytest.approx(10.0)
    # The computed tier replaces the imported one, so escalation priority follows it.
    with Session(shop.engine, future=True) as session:
        tiers = dict(session.execute(select(Customer.id, Customer.tier)).all())
    assert tiers == {1: "potential", 2: "low", 3: metrics(shop, 3).tier, 4: "potential"}


def test_churned_customer_who_buys_again_is_reactivated(shop: CRM, clock: Clock) -> None:
    add_customer(shop, 1)
    for d in (400, 370, 340):
        add_order(shop, 1, d, 100.0)
    shop.refresh_analytics()
    assert metrics(shop, 1).stage == "churned"
    add_order(shop, 1, -0.01, 100.0)  # stamped after the first run, as live writes are
    clock.now = NOW + timedelta(hours=1)
    shop.refresh_analytics()
    assert metrics(shop, 1).stage in lifecycle.ACTIVE_STAGES


def test_time_alone_moves_a_customer_to_at_risk(shop: CRM, clock: Clock) -> None:
    add_customer(shop, 1)
    for d in (40, 30, 20, 10):
        add_order(shop, 1, d, 100.0)
    shop.refresh_analytics()
    assert metrics(shop, 1).stage in ("new", "growth")  # first order 40 days ago: still new
    clock.now = NOW + timedelta(days=15)  # gap 25 > 1.5 x 10
    result = shop.refresh_analytics()
    assert result.kind == "incremental" and result.customers_refreshed == 1
    assert metrics(shop, 1).stage == "at_risk"


def test_refunds_are_netted_and_returned_orders_not_counted(shop: CRM) -> None:
    from crm_adapter.models import ReturnRequest

    add_customer(shop, 1)
    add_order(shop, 1, 10, 300.0)
    add_order(shop, 1, 20, 500.0, status="returned")
    with Session(shop.engine, future=True) as s:
        order_id = s.execute(select(Order.id).where(Order.total == 300.0)).scalar_one()
        s.add(ReturnRequest(return_number="R1", order_id=order_id, customer_id=1, sku="X", reason="尺码",
                            status="refunded", refund_amount=100.0, created_at=NOW, updated_at=NOW))
        s.commit()
    shop.refresh_analytics()
    assert (metrics(shop, 1).order_count, metrics(shop, 1).monetary) == (1, 200.0)


# -- bad data -------------------------------------------------------------------


def test_bad_orders_are_excluded_and_counted(shop: CRM) -> None:
    add_customer(shop, 1)
    add_customer(shop, 2, deleted=True)
    add_order(shop, 1, 10, 100.0)
    add_order(shop, 1, 5, -50.0)  # negative
    add_order(shop, 1, -3, 70.0)  # in the future
    add_order(shop, 2, 10, 100.0)  # deleted customer
    result = shop.refresh_analytics()
    assert result.excluded_orders == 3
    assert metrics(shop, 1).order_count == 1 and metrics(shop, 2) is None


def test_strict_refresh_refuses_and_writes_nothing(shop: CRM) -> None:
    add_customer(shop, 1)
    add_order(shop, 1, 10, 100.0)
    shop.refresh_analytics()
    before = metrics(shop, 1)
    add_order(shop, 1, 1, -5.0)
    with pytest.raises(errors.InvalidInput) as caught:
        shop.refresh_analytics(full=True, strict=True)
    assert "金额为负1笔" in caught.value.message_zh
    with Session(shop.engine, future=True) as s:
        assert s.execute(select(func.count()).select_from(AnalyticsRun)).scalar_one() == 1
    assert metrics(shop, 1).computed_at == before.computed_at


def test_bad_settings_and_periods_are_refused(shop: CRM) -> None:
    with pytest.raises(errors.InvalidInput):
        Settings(bins=1)
    with pytest.raises(errors.InvalidInput):
        Settings(retention=1.5)
    with pytest.raises(errors.InvalidInput):
        shop.kpis(NOW, NOW - timedelta(days=1))
    with pytest.raises(errors.InvalidInput):
        shop.customer_profile("abc")
    with pytest.raises(errors.NotFound):
        shop.customer_profile(999)
    with pytest.raises(errors.InvalidInput):
        shop.record_nps(None, "web", "s1", 11, "k1")


def test_profile_on_the_fly_before_any_refresh(shop: CRM) -> None:
    add_customer(shop, 1)
    add_order(shop, 1, 3, 120.0)
    profile = shop.customer_profile(1)
    assert not profile.stored and profile.stage == "new" and profile.frequency == 1
    assert profile.r_score is None and profile.tier == "low"


def test_kpis_exact(shop: CRM) -> None:
    for cid in (1, 2, 3):
        add_customer(shop, cid)
    add_order(shop, 1, 40, 100.0)  # previous period
    add_order(shop, 2, 45, 100.0)  # previous period
    add_order(shop, 1, 10, 300.0)  # this period: 1 retained, 2 lost
    add_order(shop, 1, 5, 100.0)
    add_order(shop, 3, 3, 200.0)
    for i, score in enumerate((10, 9, 7, 3)):
        shop.record_nps(None, "web", f"s{i}", score, f"nps{i}")
    shop.record_csat(None, "web", "s", 5, "c1")
    shop.record_csat(None, "web", "s", 2, "c2")
    shop.refresh_analytics()
    report = shop.kpis(NOW - timedelta(days=30), NOW + timedelta(seconds=1))
    assert report.retention_rate == 0.5 and report.churn_rate == 0.5
    assert report.orders == 3 and report.aov == 200.0 and report.active_customers == 2
    assert report.repurchase_rate == 0.5
    assert report.nps == 25.0 and report.nps_responses == 4
    assert report.csat_average == 3.5 and report.csat_satisfied_rate == 0.5
    assert {t.tier for t in report.clv_by_tier} == {"core", "potential", "low"}


# -- properties -------------------------------------------------------------------

values = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=60)


@given(values, st.integers(min_value=2, max_value=10), st.randoms())
def test_rfm_scores_in_range_monotone_and_permutation_invariant(data, bins, rnd) -> None:
    scores = rfm.quantile_scores(data, bins)
    assert all(1 <= s <= bins for s in scores)
    for (a, sa), (b, sb) in zip(sorted(zip(data, scores)), sorted(zip(data, scores))[1:]):
        assert sa <= sb  # monotone; equal values get equal scores
        if a == b:
            assert sa == sb
    shuffled = list(zip(data, scores))
    rnd.shuffle(shuffled)
    again = dict(zip([v for v, _ in shuffled], rfm.quantile_scores([v for v, _ in shuffled], bins)))
    assert all(again[v] == s for v, s in zip(data, scores))


money = st.floats(min_value=0, max_value=1e5, allow_nan=False)


@given(st.integers(0, 50), money, st.integers(0, 50), money, st.floats(0.01, 0.5))
def test_clv_nonnegative_monotone_and_discount_lowers(f1, aov1, df, daov, rate) -> None:
    s = Settings(discount_rate=rate)
    simple1, disc1 = clv.customer_clv(f1, f1 * aov1, s)
    simple2, disc2 = clv.customer_clv(f1 + df, (f1 + df) * (aov1 + daov), s)
    assert simple1 >= 0 and disc1 >= 0
    assert simple2 >= simple1 - 0.01 and disc2 >= disc1 - 0.01
    undiscounted = clv.customer_clv(f1, f1 * aov1, Settings(discount_rate=0.0))[1]
    assert disc1 <= undiscounted + 0.01


@given(st.lists(st.floats(0, 900), max_size=8), st.floats(0, 900))
def test_every_customer_gets_one_stage_and_buying_again_reactivates(ago, gap_after) -> None:
    now = 20000.0
    days = sorted(now - a for a in ago)
    gaps = [b - a for a, b in zip(days, days[1:])]
    from statistics import median

    facts = Facts(order_count=len(days), first_day=days[0] if days else None, last_day=days[-1] if days else None,
                  median_interval=float(median(gaps)) if gaps else None,
                  frequency=sum(1 for d in days if d > now - 365))
    stage = lifecycle.stage(facts, now, 90.0, S)
    assert stage in lifecycle.STAGE_LABELS
    risk = lifecycle.churn_risk(facts, now, 90.0, S)
    assert (risk is None) == (not days) and (risk is None or 0 <= risk <= 1)
    if stage == "churned":
        bought = Facts(order_count=facts.order_count + 1, first_day=facts.first_day, last_day=now,
                       median_interval=facts.median_interval, frequency=facts.frequency + 1)
        assert lifecycle.stage(bought, now, 90.0, S) in lifecycle.ACTIVE_STAGES


@hsettings(max_examples=8, deadline=None)
@given(st.integers(0, 10**6))
def test_incremental_refresh_equals_full(tmp_path_factory, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path_factory.mktemp("inc") / "crm.sqlite3"
    clock = Clock(NOW)
    crm = CRM(f"sqlite:///{path}", clock=clock)
    crm.create_schema()
    try:
        for cid in range(1, 31):
            add_customer(crm, cid)
            for _ in range(rng.choice((0, 1, 1, 2, 3, 6))):
                add_order(crm, cid, rng.uniform(0, 700), round(rng.uniform(10, 900), 2))
        crm.refresh_analytics()
        for step in range(3):
            clock.now += timedelta(days=rng.choice((1, 10, 60)))
            for cid in rng.sample(range(1, 31), 4):
                add_order(crm, cid, (NOW - clock.now).days - rng.uniform(0, 1), round(rng.uniform(10, 900), 2))
            crm.refresh_analytics()
        incremental = _snapshot(crm)
        crm.refresh_analytics(full=True)
        full = _snapshot(crm)
        assert incremental.keys() == full.keys()
        for cid in full:
            a, b = incremental[cid], full[cid]
            assert a[:-1] == b[:-1], cid
            assert (a[-1] is None) == (b[-1] is None)
            if a[-1] is not None:
                assert abs(a[-1] - b[-1]) <= S.risk_tolerance + 1e-9
    finally:
        crm.dispose()


def _snapshot(crm: CRM) -> dict[int, tuple]:
    t = CustomerMetrics
    cols = (t.customer_id, t.order_count, t.last_order_day, t.frequency, t.monetary, t.median_interval_days,
            t.r_score, t.f_score, t.m_score, t.tier, t.stage, t.clv_simple, t.clv_discounted, t.churn_risk)
    with Session(crm.engine, future=True) as s:
        return {row[0]: tuple(row[1:]) for row in s.execute(select(*cols))}


_opt_day = st.one_of(st.none(), st.floats(19000, 20700))


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(19000, 20600), st.floats(0, 400), st.floats(0, 300),
                          st.one_of(st.none(), st.floats(0, 200)), st.integers(0, 12), st.floats(0, 5000),
                          st.integers(0, 5), _opt_day, st.one_of(st.none(), st.floats(1, 5)), st.integers(0, 4),
                          _opt_day), min_size=1, max_size=30),
       st.floats(7, 200), st.sampled_from([True, False]))
def test_column_derivation_is_the_scalar_rules_exactly(rows, population, with_previous) -> None:
    """The refresh derives whole columns with numpy; the profile uses the scalar
    rules. Both must agree to the last bit, or incremental != full."""
    from crm_adapter.analytics.daynum import from_day
    from crm_adapter.analytics.facts import FactsTable
    from crm_adapter.analytics.refresh import derive_columns

    facts = []
    for count, first, span, tail, interval, freq, money, compl, compl_day, csat, csat_n, window in rows:
        has = count > 0
        facts.append(Facts(
            order_count=count, first_day=first if has else None, last_day=first + span if has else None,
            lifetime_spend=round(money * 2, 2), median_interval=interval if count >= 2 else None,
            frequency=min(freq, count), monetary=round(money, 2) if has else 0.0,
            window_oldest_day=window if has else None, complaints_recent=compl,
            complaints_oldest_day=compl_day if compl else None, csat_avg=csat if csat_n else None,
            csat_count=csat_n if csat is not None else 0, csat_oldest_day=compl_day if csat_n and csat else None,
        ))
    table = FactsTable.empty(np.arange(1, len(facts) + 1))
    for i, f in enumerate(facts):
        for name, column in (("order_count", "order_count"), ("first_day", "first_day"), ("last_day", "last_day"),
                             ("lifetime_spend", "lifetime_spend"), ("median_interval", "median_interval"),
                             ("frequency", "frequency"), ("monetary", "monetary"),
                             ("window_oldest_day", "window_oldest_day"), ("complaints_recent", "complaints_recent"),
                             ("complaints_oldest_day", "complaints_oldest_day"), ("csat_avg", "csat_avg"),
                             ("csat_count", "csat_count"), ("csat_oldest_day", "csat_oldest_day")):
            value = getattr(f, name)
            getattr(table, column)[i] = np.nan if value is None else value
    now = NOW
    now_day = to_day(now)
    buyers = [f for f in facts if f.order_count]
    cuts = {"r": rfm.cut_points([f.last_day for f in buyers], S.bins),
            "f": rfm.cut_points([f.frequency for f in buyers], S.bins),
            "m": rfm.cut_points([f.monetary for f in buyers], S.bins)}
    since = NOW - timedelta(days=3)
    previous = {i + 1: ("low", "new", since, 2) for i in range(len(facts))} if with_previous else {}
    columns = derive_columns(table, now, population, cuts, S, previous)
    for i, f in enumerate(facts):
        stage = lifecycle.stage(f, now_day, population, S)
        review = lifecycle.next_review(f, now_day, population, S)
        scores = ((rfm.score(f.last_day, cuts["r"]), rfm.score(f.frequency, cuts["f"]), rfm.score(f.monetary, cuts["m"]))
                  if f.order_count else (None, None, None))
        assert columns["stage"][i] == stage
        assert columns["churn_risk"][i] == lifecycle.churn_risk(f, now_day, population, S)
        assert columns["next_review_at"][i] == (from_day(review) - timedelta(seconds=1) if review is not None else None)
        assert (columns["clv_simple"][i], columns["clv_discounted"][i]) == clv.customer_clv(f.frequency, f.monetary, S)
        assert (columns["r_score"][i], columns["f_score"][i], columns["m_score"][i]) == scores
        assert columns["tier"][i] == rfm.tier(*scores, S.core_threshold, S.potential_threshold)
        assert columns["recency_days"][i] == (round(now_day - f.last_day, 3) if f.last_day is not None else None)
        assert columns["stage_since"][i] == (since if with_previous and stage == "new" else now)
