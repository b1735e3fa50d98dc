"""Differentiated greetings: core customers come first, drifting ones get a win-back coupon."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.models import Coupon, Customer, Order
from tests.conftest import Chat
from tests.conversations.conftest import bound_chat


def _drifting_customer(crm: CRM, marketing: bool) -> int:
    """A customer who bought monthly and stopped half a year ago."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with Session(crm.engine, future=True) as s:
        customer = Customer(name="赵敏", created_at=now - timedelta(days=800))
        s.add(customer)
        s.flush()
        for i, days in enumerate((180, 210, 240, 270)):
            when = now - timedelta(days=days)
            s.add(Order(order_number=f"9{customer.id:05d}{i:06d}", customer_id=customer.id, status="delivered",
                        total=150.0, address="杭州市西湖区文三路1号", created_at=when, updated_at=when,
                        delivered_at=when))
        s.commit()
        cid = customer.id
    if marketing:
        crm.set_consent(cid, "all", "marketing", True, "signup", f"test-consent:{cid}")
    return cid


def _coupons(crm: CRM, cid: int) -> int:
    with Session(crm.engine, future=True) as s:
        return s.execute(select(func.count()).where(Coupon.customer_id == cid)).scalar_one()


def test_core_customer_hears_they_come_first(zhangwei: Chat) -> None:
    reply = zhangwei.say("在吗")
    assert "张伟您好" in reply and "优先" in reply and "核心" not in reply  # never name the tier


def test_drifting_customer_who_agreed_to_marketing_gets_a_win_back_coupon(stack, stack_crm) -> None:
    cid = _drifting_customer(stack_crm, marketing=True)
    chat = bound_chat(stack, stack_crm, cid)
    reply = chat.say("你好")
    assert "赵敏您好" in reply and "回归礼券" in reply and "满199减30" in reply
    chat.say("满多少包邮")  # later messages in the session do not hand out more
    assert _coupons(stack_crm, cid) == 1
    assert "回归礼券" in chat.say("我有什么优惠券")


def test_no_coupon_without_marketing_consent(stack, stack_crm) -> None:
    cid = _drifting_customer(stack_crm, marketing=False)
    reply = bound_chat(stack, stack_crm, cid).say("你好")
    assert "赵敏您好" in reply and "礼券" not in reply
    assert _coupons(stack_crm, cid) == 0
