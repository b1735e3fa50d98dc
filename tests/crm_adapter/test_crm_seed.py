"""The seed: deterministic, fast, realistic, and the documented demo fixtures."""
from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.models import (
    Base,
    ChannelIdentity,
    Complaint,
    Coupon,
    Customer,
    Order,
    ReturnRequest,
)
from crm_adapter.seed import main, seed

from .conftest import SEED_NOW


def _dump(crm: CRM) -> dict[str, list[tuple[Any, ...]]]:
    with crm.engine.connect() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))]
            for table in Base.metadata.sorted_tables
        }


def test_same_seed_same_data_and_different_seed_different_data(tmp_path: Path) -> None:
    dumps = []
    for name, value in (("a", 11), ("b", 11), ("c", 12)):
        crm = CRM(f"sqlite:///{tmp_path / name}.sqlite3")
        seed(crm, customers=80, seed=value, now=SEED_NOW)
        dumps.append(_dump(crm))
        crm.dispose()
    assert dumps[0] == dumps[1]
    assert dumps[0]["customers"] != dumps[2]["customers"]
    # The demo customers do not depend on the seed.
    assert dumps[0]["customers"][:3] == dumps[2]["customers"][:3]


def test_full_size_seed_is_fast_and_long_tailed(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'full.sqlite3'}")
    started = time.perf_counter()
    report = seed(crm, customers=3000, seed=42)
    elapsed = time.perf_counter() - started
    assert elapsed < 15, f"seeding took {elapsed:.1f} s"
    assert report.customers == 3003
    assert 10000 <= report.orders <= 14000
    with Session(crm.engine, future=True) as session:
        tiers = dict(session.execute(select(Customer.tier, func.count()).group_by(Customer.tier)).all())
        assert tiers["core"] < tiers["potential"] < tiers["low"]
        assert tiers["low"] > 0.6 * report.customers
        spend = dict(session.execute(
            select(Customer.tier, func.avg(Customer.total_spent)).group_by(Customer.tier)).all())
        assert spend["core"] > spend["potential"] > spend["low"]
        stages = {s for (s,) in session.execute(select(Customer.lifecycle_stage).distinct())}
        assert stages == {"potential", "acquisition", "growth", "loyalty", "churn"}
        statuses = {s for (s,) in session.execute(select(Order.status).distinct())}
        assert statuses == {"pending_payment", "paid", "shipped", "delivered", "cancelled", "returned"}
        open_complaints = session.execute(
            select(func.count()).select_from(Complaint).where(Complaint.status.in_(("open", "pending")))
        ).scalar_one()
        assert open_complaints > 1
        open_returns = session.execute(
            select(func.count()).select_from(ReturnRequest)
            .where(ReturnRequest.status.in_(("requested", "approved", "received")))
        ).scalar_one()
        assert open_returns > 1
        assert session.execute(select(func.count()).select_from(Coupon)).scalar_one() > 300
        phones = session.execute(select(func.count(Customer.phone.distinct()))).scalar_one()
        assert phones == report.customers
    # Consumables are bought again: some customer bought the same consumable in 3+ orders.
    with crm.engine.connect() as conn:
        repeat = conn.exec_driver_sql(
            "SELECT count(*) FROM (SELECT o.customer_id, i.sku FROM order_items i "
            "JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id "
            "WHERE p.repurchase_days IS NOT NULL GROUP BY o.customer_id, i.sku HAVING count(*) >= 3)"
        ).scalar()
    assert repeat > 50
    crm.dispose()


def test_demo_fixtures(crm: CRM, clock) -> None:
    zhang = crm.get_customer(1)
    assert (zhang.name, zhang.masked_phone, zhang.tier, zhang.member_level, zhang.points, zhang.city) == (
        "张伟", "138****8000", "core", "金卡", 12680, "上海")
    statuses = {o.order_number: o.status for o in crm.recent_orders(1, limit=20)}
    assert statuses == {
        "260101000001": "shipped", "260101000002": "paid", "260101000003": "delivered",
        "260101000004": "cancelled", "260101000005": "delivered", "260101000006": "returned",
        "260101000007": "delivered", "260101000008": "delivered", "260101000009": "delivered",
        "260101000010": "delivered",
    }
    shipped = crm.get_order(1, "260101000001")
    assert (shipped.carrier, shipped.tracking_number) == ("顺丰", "SF1234567890")
    assert "上海转运中心" in shipped.logistics_note
    now = clock()
    assert timedelta(days=2.9) < now - crm.get_order(1, "260101000003").delivered_at < timedelta(days=3.1)
    assert "声浪降噪耳机" in {i.name for i in crm.get_order(1, "260101000003").items}
    assert timedelta(days=39.9) < now - crm.get_order(1, "260101000005").delivered_at < timedelta(days=40.1)
    assert len(crm.complaints_for_customer(1, open_only=True)) == 1
    coupons = crm.membership(1).coupons
    assert len(coupons) == 2 and sum(c.expiring_soon for c in coupons) == 1
    assert sorted(r.status for r in crm.returns_for_customer(1)) == ["approved", "refunded"]

    lina = crm.get_customer(2)
    assert (lina.name, lina.masked_phone, lina.tier, lina.member_level) == ("李娜", "139****5678", "potential", "银卡")
    assert crm.get_order(2, "260101000011").status == "delivered"
    assert crm.get_order(2, "260101000012").status == "shipped"

    wang = crm.get_customer(3)
    assert (wang.name, wang.masked_phone, wang.tier, wang.member_level) == ("王芳", "137****1111", "low", "普通会员")
    assert crm.get_order(3, "260101000021").status == "paid"


def test_demo_identities(crm: CRM, db) -> None:
    with db() as session:
        identities = session.execute(
            select(ChannelIdentity.channel, ChannelIdentity.external_id, ChannelIdentity.customer_id)
            .where(ChannelIdentity.customer_id <= 3)
            .order_by(ChannelIdentity.customer_id, ChannelIdentity.channel)
        ).all()
    assert [tuple(i) for i in identities] == [
        ("rest", "demo-zhangwei", 1), ("web", "demo-zhangwei", 1), ("rest", "demo-lina", 2)]


def test_seed_refuses_a_non_empty_database(crm: CRM) -> None:
    with pytest.raises(RuntimeError):
        seed(crm, customers=1)


def test_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    assert main(["--url", url, "--customers", "5"]) == 0
    assert "8 customers" in capsys.readouterr().out
    assert main(["--url", url, "--customers", "5"]) == 1  # not empty
    assert main(["--url", url, "--if-empty"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    monkeypatch.setenv("KEFU_CRM_URL", url)
    assert main(["--reset", "--customers", "2"]) == 0
    assert "5 customers" in capsys.readouterr().out
