"""Membership, profile updates and consent history."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from crm_adapter import CRM, errors, views
from crm_adapter.models import Consent, Customer, ProcessedOperation

ZHANG, LINA, WANG = 1, 2, 3


def test_membership_of_a_gold_member(crm: CRM, clock) -> None:
    m = crm.membership(ZHANG)
    assert isinstance(m, views.MembershipView)
    assert (m.level, m.points, m.points_value_yuan) == ("金卡", 12680, 126.8)
    assert m.points_expiring == 2300
    assert m.points_expire_at == date(clock.now.astimezone(views.CHINA_TZ).year, 12, 31)
    assert m.next_level == "钻石"
    assert m.spend_to_next_level == pytest.approx(20000 - m.total_spent)
    assert [c.title for c in m.coupons] == ["满300减30", "金卡专享满1000减100"]
    assert [c.expiring_soon for c in m.coupons] == [True, False]


def test_membership_of_a_silver_member_and_a_newcomer(crm: CRM) -> None:
    lina = crm.membership(LINA)
    assert (lina.level, lina.next_level) == ("银卡", "金卡")
    assert lina.spend_to_next_level == pytest.approx(8000 - lina.total_spent)
    wang = crm.membership(WANG)
    assert (wang.level, wang.next_level, wang.points) == ("普通会员", "银卡", 108)
    assert wang.points_expiring == 0 and wang.points_expire_at is None and wang.coupons == ()


def test_membership_hides_expired_and_used_coupons(crm: CRM, clock) -> None:
    clock.advance(days=6)
    assert [c.title for c in crm.membership(ZHANG).coupons] == ["金卡专享满1000减100"]


def test_membership_unknown_customer(crm: CRM) -> None:
    with pytest.raises(errors.NotFound):
        crm.membership(99999)


@pytest.mark.parametrize(
    "field, value, check",
    [
        ("phone", "139 0000 1234", lambda c: c.masked_phone == "139****1234"),
        ("phone", "+8613900001234", lambda c: c.masked_phone == "139****1234"),
        ("email", "New.Mail@Example.COM", lambda c: c.masked_email == "N***@example.com"),
        ("birthday", "1990年5月3日", lambda c: c.birthday == date(1990, 5, 3)),
        ("birthday", "1990-05-03", lambda c: c.birthday == date(1990, 5, 3)),
        ("birthday", date(1991, 1, 2), lambda c: c.birthday == date(1991, 1, 2)),
        ("address", "北京市海淀区中关村大街1号", lambda c: c.masked_address == "北京市海淀区****"),
        ("name", "王芳芳", lambda c: c.name == "王芳芳"),
    ],
)
def test_update_profile_happy_paths(crm: CRM, key, field, value, check) -> None:
    customer = crm.update_profile(WANG, field, value, key(f"profile:{field}"))
    assert isinstance(customer, views.CustomerView)
    assert check(customer)
    assert check(crm.get_customer(WANG))


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("phone", "12345", "11位"),
        ("phone", "23800138000", "11位"),
        ("email", "not-an-email", "邮箱"),
        ("email", "a@b", "邮箱"),
        ("birthday", "5月3日", "完整的出生日期"),
        ("birthday", "1990年2月30日", "不太对"),
        ("birthday", "2999-01-01", "不太对"),
        ("address", "家里", "不够完整"),
        ("name", "张3", "姓名"),
        ("name", "", "姓名"),
        ("nickname", "小王", "可以修改"),
    ],
)
def test_update_profile_refusals(crm: CRM, key, count, field, value, fragment) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.update_profile(WANG, field, value, key("profile"))
    assert fragment in info.value.message_zh
    assert count(ProcessedOperation) == 0


def test_update_profile_phone_of_another_customer(crm: CRM, key, db) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.update_profile(WANG, "phone", "13800138000", key("profile"))
    assert "138" not in info.value.message_zh  # says nothing about whose number it is
    with db() as session:
        assert session.get(Customer, WANG).phone == "13700001111"


def test_update_profile_unknown_customer(crm: CRM, key) -> None:
    with pytest.raises(errors.NotFound):
        crm.update_profile(99999, "name", "张三", key("profile"))


def test_consent_history_keeps_every_change(crm: CRM, key, db) -> None:
    crm.set_marketing_consent(WANG, "sms", "marketing", True, "chat", key("consent"))
    crm.set_marketing_consent(WANG, "sms", "marketing", False, "chat", key("consent"))
    with db() as session:
        rows = session.execute(
            select(Consent).where(Consent.customer_id == WANG).order_by(Consent.id)
        ).scalars().all()
    assert [(r.channel, r.purpose, r.granted, r.source) for r in rows] == [
        ("sms", "marketing", True, "chat"), ("sms", "marketing", False, "chat"),
    ]


@pytest.mark.parametrize(
    "purpose, granted",
    [("advertising", True), ("marketing", "yes"), ("marketing", None)],
)
def test_consent_validation(crm: CRM, key, purpose, granted) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.set_marketing_consent(WANG, "sms", purpose, granted, "chat", key("consent"))


def test_consent_unknown_customer(crm: CRM, key) -> None:
    with pytest.raises(errors.NotFound):
        crm.set_marketing_consent(99999, "sms", "marketing", True, "chat", key("consent"))
