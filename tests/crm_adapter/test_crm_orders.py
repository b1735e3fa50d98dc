"""Order lookups, cancellation and address changes."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from crm_adapter import CRM, errors, views
from crm_adapter.models import Customer, Order, ProcessedOperation

ZHANG, LINA, WANG = 1, 2, 3
NEW_ADDRESS = "上海市徐汇区漕溪北路88号2栋501室"


def _order(db, number: str) -> Order:
    with db() as session:
        return session.execute(select(Order).where(Order.order_number == number)).scalar_one()


def test_latest_order_is_the_newest(crm: CRM) -> None:
    latest = crm.latest_order(ZHANG)
    assert isinstance(latest, views.OrderView)
    assert latest.order_number == "260101000002"
    assert crm.latest_order(WANG).order_number == "260101000021"


def test_latest_order_none_without_orders(empty_crm: CRM) -> None:
    assert empty_crm.latest_order(ZHANG) is None


def test_get_order_shipped_details(crm: CRM) -> None:
    order = crm.get_order(ZHANG, "260101000001")
    assert order.status == "shipped" and order.status_label == "已发货"
    assert (order.carrier, order.tracking_number) == ("顺丰", "SF1234567890")
    assert "上海转运中心" in order.logistics_note
    assert [i.name for i in order.items] == ["星辰X5手机"]
    assert order.items[0].category == "手机数码"
    assert order.total == 2999.0
    assert order.masked_address == "上海市浦东新区****"
    assert not order.can_cancel and not order.can_change_address and not order.can_return


def test_order_verdicts_follow_the_rules(crm: CRM) -> None:
    paid = crm.get_order(ZHANG, "260101000002")
    assert paid.status_label == "已付款，待发货" and paid.can_cancel and paid.can_change_address
    recent = crm.get_order(ZHANG, "260101000003")
    assert recent.can_return and recent.return_deadline is not None
    assert {i.name for i in recent.items} == {"声浪降噪耳机", "极速充电宝"}
    assert not crm.get_order(ZHANG, "260101000005").can_return  # 40 days ago
    assert not crm.get_order(ZHANG, "260101000007").can_return  # a return is open
    assert crm.get_order(ZHANG, "260101000004").status_label == "已取消"


def test_get_order_never_leaks_another_customers_order(crm: CRM) -> None:
    assert crm.get_order(ZHANG, "260101000011") is None  # 李娜's
    assert crm.get_order(LINA, "260101000001") is None  # 张伟's
    assert crm.get_order(ZHANG, "999999999999") is None  # nobody's


def test_get_order_malformed_number(crm: CRM) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.get_order(ZHANG, "26010100000")


def test_recent_orders_newest_first_and_limited(crm: CRM) -> None:
    orders = crm.recent_orders(ZHANG)
    assert len(orders) == 5
    assert [o.order_number for o in orders[:3]] == ["260101000002", "260101000001", "260101000003"]
    times = [o.created_at for o in orders]
    assert times == sorted(times, reverse=True)
    assert len(crm.recent_orders(ZHANG, limit=2)) == 2
    assert len(crm.recent_orders(ZHANG, limit=100)) == 10
    assert {o.order_number for o in crm.recent_orders(LINA, limit=50)} == {
        "260101000011", "260101000012", "260101000013", "260101000014",
    }


def test_cancel_paid_order(crm: CRM, db, key) -> None:
    before = crm.get_customer(ZHANG).total_spent
    change = crm.cancel_order(ZHANG, "260101000002", key("cancel"))
    assert isinstance(change, views.OrderChange)
    assert change.outcome == "done"
    assert change.order.status == "cancelled" and not change.order.can_cancel
    assert _order(db, "260101000002").cancelled_at is not None
    assert crm.get_customer(ZHANG).total_spent == pytest.approx(before - 346.0)
    again = crm.cancel_order(ZHANG, "260101000002", key("cancel"))
    assert again.outcome == "already"


def test_cancel_pending_payment_order(crm: CRM, db, key) -> None:
    with db() as session:
        session.execute(update(Order).where(Order.order_number == "260101000021")
                        .values(status="pending_payment", paid_at=None))
        session.commit()
    assert crm.cancel_order(WANG, "260101000021", key("cancel")).outcome == "done"


@pytest.mark.parametrize("number", ["260101000001", "260101000003", "260101000006"])
def test_cancel_refused_after_shipping(crm: CRM, key, number: str) -> None:
    change = crm.cancel_order(ZHANG, number, key("cancel"))
    assert change.outcome == "not_allowed"
    assert change.order.order_number == number
    assert crm.get_order(ZHANG, number).status != "cancelled"


def test_cancel_someone_elses_order_is_not_found(crm: CRM, key) -> None:
    change = crm.cancel_order(LINA, "260101000002", key("cancel"))
    assert change == views.OrderChange("not_found", None)
    assert crm.get_order(ZHANG, "260101000002").status == "paid"


def test_cancel_for_unknown_customer_is_not_found(crm: CRM, key) -> None:
    assert crm.cancel_order(987654, "260101000002", key("cancel")).outcome == "not_found"


def test_change_address_on_paid_order(crm: CRM, db, key) -> None:
    change = crm.change_address(ZHANG, "260101000002", NEW_ADDRESS, key("addr"))
    assert change.outcome == "done"
    assert change.order.masked_address == "上海市徐汇区****"
    assert _order(db, "260101000002").address == NEW_ADDRESS
    assert crm.change_address(ZHANG, "260101000002", NEW_ADDRESS, key("addr")).outcome == "already"


def test_change_address_refused_once_shipped(crm: CRM, db, key) -> None:
    change = crm.change_address(ZHANG, "260101000001", NEW_ADDRESS, key("addr"))
    assert change.outcome == "not_allowed"
    assert _order(db, "260101000001").address != NEW_ADDRESS


def test_change_address_of_someone_elses_order(crm: CRM, db, key) -> None:
    assert crm.change_address(LINA, "260101000002", NEW_ADDRESS, key("addr")).outcome == "not_found"
    assert _order(db, "260101000002").address != NEW_ADDRESS


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("我家", "不够完整"),
        ("上海", "不够完整"),
        ("1234567890", "不够完整"),
        ("香港九龙弥敦道100号", "港澳台"),
        ("台湾省台北市信义路5段7号", "港澳台"),
    ],
)
def test_change_address_validates(crm: CRM, key, count, address: str, fragment: str) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.change_address(ZHANG, "260101000002", address, key("addr"))
    assert fragment in info.value.message_zh
    assert count(ProcessedOperation) == 0


def test_customer_total_spent_matches_spending_orders(crm: CRM, db) -> None:
    with db() as session:
        zhang = session.get(Customer, ZHANG)
        orders = session.execute(select(Order).where(Order.customer_id == ZHANG)).scalars()
        spent = sum(o.total for o in orders if o.status in ("paid", "shipped", "delivered"))
        assert zhang.total_spent == pytest.approx(spent)
