"""Identity, verification and customer lookup."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from crm_adapter import CRM, errors, views
from crm_adapter.models import ChannelIdentity, Customer, Order, VerificationAttempt


def test_resolve_identity_finds_demo_customers(crm: CRM) -> None:
    zhang = crm.resolve_identity("rest", "demo-zhangwei")
    assert zhang is not None and zhang.id == 1 and zhang.name == "张伟"
    lina = crm.resolve_identity("rest", "demo-lina")
    assert lina is not None and lina.id == 2


def test_resolve_identity_unknown_sender_is_none(crm: CRM) -> None:
    assert crm.resolve_identity("rest", "nobody") is None
    assert crm.resolve_identity("wechat", "demo-zhangwei") is None  # channel is part of the identity


def test_get_customer_view_is_masked_and_complete(crm: CRM) -> None:
    zhang = crm.get_customer(1)
    assert isinstance(zhang, views.CustomerView)
    assert zhang.masked_phone == "138****8000"
    assert zhang.masked_email == "z***@example.com"
    assert zhang.masked_address == "上海市浦东新区****"
    assert (zhang.tier, zhang.member_level, zhang.points, zhang.city) == ("core", "金卡", 12680, "上海")
    assert "13800138000" not in repr(zhang)
    assert zhang.created_at.utcoffset().total_seconds() == 8 * 3600


def test_get_customer_accepts_slot_shaped_ids(crm: CRM) -> None:
    assert crm.get_customer(2.0).id == 2
    assert crm.get_customer("3").id == 3


def test_get_customer_missing_raises_not_found(crm: CRM) -> None:
    with pytest.raises(errors.NotFound):
        crm.get_customer(999999)


def test_deleted_customer_is_invisible(crm: CRM, db) -> None:
    with db() as session:
        session.execute(update(Customer).where(Customer.id == 1).values(deleted=True))
        session.commit()
    with pytest.raises(errors.NotFound):
        crm.get_customer(1)
    assert crm.resolve_identity("rest", "demo-zhangwei") is None
    assert crm.get_order(1, "260101000001") is None
    assert crm.verify_by_order("260101000001", "8000") is None


def test_bind_identity_then_resolve(crm: CRM, key, count) -> None:
    assert crm.resolve_identity("wechat", "oWangFang") is None
    assert crm.bind_identity("wechat", "oWangFang", 3, key("bind")) is None
    assert crm.resolve_identity("wechat", "oWangFang").id == 3
    assert count(ChannelIdentity, ChannelIdentity.external_id == "oWangFang") == 1


def test_bind_identity_rebinds_to_the_newly_verified_customer(crm: CRM, key, count) -> None:
    crm.bind_identity("rest", "demo-lina", 3, key("bind"))
    assert crm.resolve_identity("rest", "demo-lina").id == 3
    assert count(ChannelIdentity, ChannelIdentity.external_id == "demo-lina") == 1


def test_bind_identity_unknown_customer(crm: CRM, key) -> None:
    with pytest.raises(errors.NotFound):
        crm.bind_identity("wechat", "oX", 424242, key("bind"))


def test_verify_by_order_success(crm: CRM) -> None:
    wang = crm.verify_by_order("260101000021", "1111")
    assert wang is not None and wang.id == 3 and wang.name == "王芳"


def test_verify_accepts_full_width_digits(crm: CRM) -> None:
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    assert crm.verify_by_order("260101000021".translate(full_width), "1111".translate(full_width)).id == 3


def test_verify_wrong_digits_and_unknown_order_look_the_same(crm: CRM) -> None:
    assert crm.verify_by_order("260101000021", "1112") is None
    assert crm.verify_by_order("999999999999", "1111") is None


def test_verify_rejects_malformed_input(crm: CRM) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.verify_by_order("12345", "1111")
    assert "12位" in info.value.message_zh
    with pytest.raises(errors.InvalidInput):
        crm.verify_by_order("260101000021", "11")


def test_verify_locks_an_order_number_after_repeated_failures(crm: CRM, clock, count) -> None:
    for guess in ("0000", "0001", "0002", "0003", "0004"):
        assert crm.verify_by_order("260101000021", guess) is None
    # Even the right digits are refused while locked: no oracle.
    assert crm.verify_by_order("260101000021", "1111") is None
    # Other orders are not affected.
    assert crm.verify_by_order("260101000001", "8000").id == 1
    clock.advance(minutes=16)
    assert crm.verify_by_order("260101000021", "1111").id == 3
    assert count(VerificationAttempt) >= 6


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order_number=st.one_of(
        st.sampled_from(["260101000001", "260101000004", "260101000011", "260101000021"]),
        st.from_regex(r"\A[0-9]{12}\Z"),
    ),
    last4=st.one_of(st.sampled_from(["8000", "5678", "1111"]), st.from_regex(r"\A[0-9]{4}\Z")),
)
def test_verify_matches_exactly_the_owners_digits(crm: CRM, db, clock, order_number: str, last4: str) -> None:
    clock.advance(minutes=20)  # stay clear of the lockout between examples
    with db() as session:
        phone = session.execute(
            select(Customer.phone).join(Order, Order.customer_id == Customer.id)
            .where(Order.order_number == order_number)
        ).scalar_one_or_none()
    result = crm.verify_by_order(order_number, last4)
    if phone is not None and phone.endswith(last4):
        assert result is not None and result.masked_phone.endswith(last4)
    else:
        assert result is None
