"""Return requests: the 15-day window, one open return per order, no leaks."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from crm_adapter import CRM, errors, views
from crm_adapter.models import Order, ProcessedOperation, ReturnRequest

ZHANG, LINA = 1, 2


def test_create_return_for_recent_delivery(crm: CRM, key, count) -> None:
    request = crm.create_return(ZHANG, "260101000003", "耳机音质不好", key("return"))
    assert isinstance(request, views.ReturnView)
    assert request.return_number.startswith("R") and request.return_number[1:].isdigit()
    assert (request.status, request.status_label) == ("requested", "已提交，待审核")
    assert request.order_number == "260101000003"
    assert request.refund_amount == pytest.approx(728.0)
    assert request.sku is None and request.refund_eta is None
    assert count(ReturnRequest, ReturnRequest.return_number == request.return_number) == 1
    order = crm.get_order(ZHANG, "260101000003")
    assert not order.can_return and order.open_return_number == request.return_number
    assert order.return_deadline is not None  # the window is still open: the open return is the reason


def test_create_return_for_one_item(crm: CRM, key) -> None:
    request = crm.create_return(ZHANG, "260101000003", "不想要了", key("return"), sku="SKU1003")
    assert (request.sku, request.product_name) == ("SKU1003", "声浪降噪耳机")
    assert request.refund_amount == pytest.approx(599.0)


def test_return_by_product_name(crm: CRM, key) -> None:
    request = crm.create_return(ZHANG, "260101000003", "不想要了", key("return"), sku="极速充电宝")
    assert request.sku == "SKU1004" and request.refund_amount == pytest.approx(129.0)


def test_return_of_an_item_not_in_the_order(crm: CRM, key) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_return(ZHANG, "260101000003", "不想要了", key("return"), sku="SKU9999")
    assert "没有找到这件商品" in info.value.message_zh


def test_one_open_return_per_order(crm: CRM, key, count) -> None:
    first = crm.create_return(ZHANG, "260101000003", "质量问题", key("return"))
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_return(ZHANG, "260101000003", "质量问题", key("return"))
    assert first.return_number in info.value.message_zh
    assert count(ReturnRequest, ReturnRequest.status == "requested",
                 ReturnRequest.customer_id == ZHANG) == 1


def test_order_with_approved_return_cannot_get_another(crm: CRM, key) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_return(ZHANG, "260101000007", "不合适", key("return"))
    assert "处理中" in info.value.message_zh


def test_rejected_return_does_not_block_a_new_one(crm: CRM, db, key) -> None:
    with db() as session:
        session.execute(update(ReturnRequest).where(ReturnRequest.status == "approved",
                                                    ReturnRequest.customer_id == ZHANG)
                        .values(status="rejected"))
        session.commit()
    assert crm.create_return(ZHANG, "260101000007", "不合适", key("return")).status == "requested"


def test_return_past_the_window_is_refused_in_chinese(crm: CRM, key, count) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_return(ZHANG, "260101000005", "不想要了", key("return"))
    assert "15天" in info.value.message_zh
    assert count(ProcessedOperation) == 0


@pytest.mark.parametrize(
    "number, fragment",
    [
        ("260101000001", "签收之后"),  # shipped
        ("260101000002", "直接取消"),  # paid
        ("260101000006", "已经办理过退货"),  # returned
        ("260101000004", "已取消"),  # cancelled
    ],
)
def test_return_refused_for_orders_not_delivered(crm: CRM, key, number: str, fragment: str) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_return(ZHANG, number, "不想要了", key("return"))
    assert fragment in info.value.message_zh


def test_return_window_edges_use_china_calendar_days(crm: CRM, db, clock, key) -> None:
    order = crm.get_order(ZHANG, "260101000003")
    deadline = order.return_deadline
    assert deadline == order.delivered_at.date() + timedelta(days=15)
    # Move the clock to 23:00 China time on the last day: still allowed.
    last_evening = order.delivered_at.replace(hour=23, minute=0) + timedelta(days=15)
    clock.now = last_evening
    assert crm.get_order(ZHANG, "260101000003").can_return
    clock.advance(hours=2)  # 01:00 the next day
    assert not crm.get_order(ZHANG, "260101000003").can_return
    with pytest.raises(errors.InvalidInput):
        crm.create_return(ZHANG, "260101000003", "不想要了", key("return"))
    clock.now = last_evening
    assert crm.create_return(ZHANG, "260101000003", "不想要了", key("return")).status == "requested"


def test_return_of_someone_elses_order_looks_like_a_missing_order(crm: CRM, key) -> None:
    with pytest.raises(errors.InvalidInput) as theirs:
        crm.create_return(ZHANG, "260101000011", "不想要了", key("return"))
    with pytest.raises(errors.InvalidInput) as nobody:
        crm.create_return(ZHANG, "999999999999", "不想要了", key("return"))
    assert theirs.value.message_zh == nobody.value.message_zh


def test_return_needs_a_reason(crm: CRM, key) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_return(ZHANG, "260101000003", "  ", key("return"))
    assert "原因" in info.value.message_zh


def test_returns_for_customer(crm: CRM) -> None:
    returns = crm.returns_for_customer(ZHANG)
    assert {(r.order_number, r.status) for r in returns} == {
        ("260101000006", "refunded"), ("260101000007", "approved"),
    }
    approved = next(r for r in returns if r.status == "approved")
    assert approved.status_label == "审核通过，待退款" and approved.refund_eta is not None
    assert approved.product_name == "轻薄羽绒服"
    assert [r.order_number for r in crm.returns_for_customer(ZHANG, order_number="260101000006")] == [
        "260101000006"
    ]


def test_returns_never_leak(crm: CRM) -> None:
    assert crm.returns_for_customer(LINA) == []
    assert crm.returns_for_customer(LINA, order_number="260101000006") == []


def test_database_enforces_one_open_return(crm: CRM, db) -> None:
    """Even code that bypasses the check cannot create a second open return."""
    from sqlalchemy.exc import IntegrityError

    with db() as session:
        order = session.execute(select(Order).where(Order.order_number == "260101000007")).scalar_one()
        session.add(ReturnRequest(return_number="R999", order_id=order.id, customer_id=ZHANG,
                                  reason="x", status="requested", refund_amount=1.0,
                                  created_at=order.created_at))
        with pytest.raises(IntegrityError):
            session.commit()
