"""Win-back coupons: only for drifting customers who agreed to marketing, once per period."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_adapter import CRM, errors
from crm_adapter.models import Coupon
from crm_adapter.retention import RetentionOffer, offer_from_env
from tests.crm_adapter.test_analytics_model import Clock, NOW, add_customer, add_order

OFFER = RetentionOffer(title="回归礼券", amount=30.0, min_spend=199.0, valid_days=14, every_days=90)
DRIFTING, LOYAL, SILENT = 1, 2, 3


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[CRM]:
    crm = CRM(f"sqlite:///{tmp_path / 'r.sqlite3'}", clock=Clock(NOW))
    crm.create_schema()
    for cid in (DRIFTING, LOYAL, SILENT):
        add_customer(crm, cid)
    # Customers 1 and 3 bought monthly, then stopped 200 days ago; 2 still buys monthly.
    for days in (200, 230, 260, 290):
        add_order(crm, DRIFTING, days, 120.0)
        add_order(crm, SILENT, days, 120.0)
    for days in (5, 35, 65, 95):
        add_order(crm, LOYAL, days, 120.0)
    for cid in (DRIFTING, LOYAL):
        crm.set_consent(cid, "all", "marketing", True, "signup", f"consent:{cid}")
    crm.refresh_analytics()
    yield crm
    crm.dispose()


def _coupons(crm: CRM, cid: int) -> int:
    with Session(crm.engine, future=True) as s:
        return s.execute(select(func.count()).where(Coupon.customer_id == cid)).scalar_one()


def test_drifting_customer_with_consent_gets_one_coupon(shop: CRM) -> None:
    assert shop.customer_profile(DRIFTING).stage in {"at_risk", "churned"}
    coupon = shop.retention_offer(DRIFTING, "wechat", "k:1", offer=OFFER)
    assert coupon is not None and coupon.amount == 30.0 and coupon.min_spend == 199.0
    assert coupon.code.startswith("RC") and coupon.title == "回归礼券"
    # The same message retried: the same coupon; a later message in the period: nothing new.
    assert shop.retention_offer(DRIFTING, "wechat", "k:1", offer=OFFER) == coupon
    assert shop.retention_offer(DRIFTING, "socketio", "k:2", offer=OFFER) is None
    assert _coupons(shop, DRIFTING) == 1


def test_no_coupon_for_loyal_customers_without_consent_or_offer(shop: CRM) -> None:
    assert shop.retention_offer(LOYAL, "wechat", "k:3", offer=OFFER) is None       # not drifting
    assert shop.customer_profile(SILENT).stage in {"at_risk", "churned"}
    assert shop.retention_offer(SILENT, "wechat", "k:4", offer=OFFER) is None      # no marketing consent
    assert shop.retention_offer(DRIFTING, "sms-gateway", "k:5", offer=OFFER) is None  # unknown channel
    assert _coupons(shop, LOYAL) == _coupons(shop, SILENT) == 0


def test_withdrawn_consent_stops_offers(shop: CRM) -> None:
    shop.set_consent(DRIFTING, "wechat", "marketing", False, "chat", "withdraw")
    assert shop.retention_offer(DRIFTING, "wechat", "k:7", offer=OFFER) is None
    assert shop.retention_offer(DRIFTING, "rest", "k:8", offer=OFFER) is not None  # web still allowed


def test_offer_configuration_from_environment() -> None:
    assert offer_from_env({}) is None
    offer = offer_from_env({"KEFU_RETENTION_COUPON_AMOUNT": "30", "KEFU_RETENTION_COUPON_MIN_SPEND": "199"})
    assert offer == RetentionOffer("回归礼券", 30.0, 199.0, 14, 90)
    for bad in ({"KEFU_RETENTION_COUPON_AMOUNT": "abc"}, {"KEFU_RETENTION_COUPON_AMOUNT": "-5"},
                {"KEFU_RETENTION_COUPON_AMOUNT": "30", "KEFU_RETENTION_COUPON_DAYS": "0"}):
        with pytest.raises(errors.InvalidInput):
            offer_from_env(bad)
