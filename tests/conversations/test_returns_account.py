"""Returns, refunds, membership, profile, consent and ratings, over REST."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import Chat


def test_a_customer_who_changes_their_mind_leaves_the_return_form(zhangwei: Chat, stack_crm) -> None:
    # Before the next test files a return for this order (the customers are shared).
    before = len(stack_crm.returns_for_customer(1))
    assert "退货原因" in zhangwei.say("耳机不想要了，订单260101000003我要退货")
    assert "已为您取消当前操作" in zhangwei.say("算了不退了")
    assert len(stack_crm.returns_for_customer(1)) == before  # nothing filed


@pytest.mark.parametrize("withdrawal", ["我想了想还是不退货了吧", "还是不要退了，我留着"])
def test_a_customer_who_thinks_better_of_it_in_a_sentence_files_nothing(zhangwei: Chat, stack_crm,
                                                                        withdrawal: str) -> None:
    # Read by the model as request_return (0.90) and as an unsure deny (0.50):
    # neither may become the return reason.
    before = len(stack_crm.returns_for_customer(1))
    assert "退货原因" in zhangwei.say("耳机不想要了，订单260101000003我要退货")
    reply = zhangwei.say(withdrawal)
    assert "已为您取消当前操作" in reply and "退货申请已提交" not in reply
    assert len(stack_crm.returns_for_customer(1)) == before


def test_return_request_for_recent_delivery(zhangwei: Chat, stack_crm) -> None:
    assert "退货原因" in zhangwei.say("耳机不想要了，订单260101000003我要退货")
    reply = zhangwei.say("音质没有想象中好，不太喜欢")
    assert "退货申请已提交" in reply and "退货单号 R" in reply
    assert any(r.order_number == "260101000003" for r in stack_crm.returns_for_customer(1))


def test_a_short_reason_with_a_no_in_it_is_the_reason(lina: Chat) -> None:
    """Seen by hand: 「音质不好」 (read as "no" at 0.96) answered 「已为您取消当前操作」.
    (李娜's 260101000011 is returned by no other test.)"""
    assert "退货原因" in lina.say("订单260101000011我要退货")
    assert "退货申请已提交" in lina.say("音质不好")  # deny at 0.96


def test_a_second_return_of_the_same_order_names_the_first(zhangwei: Chat) -> None:
    """Seen in the tests: asked again, the bot said the return window had closed,
    on a date still to come, instead of pointing to the return in progress."""
    reply = zhangwei.say("耳机不想要了，订单260101000003我要退货")
    if "退货原因" in reply:
        assert "退货申请已提交" in zhangwei.say("音质没有想象中好，不太喜欢")
        reply = zhangwei.say("订单260101000003我要退货")
    assert "已经有一个退货申请在处理中（R" in reply and "截止" not in reply, reply


def test_return_refused_after_the_window(zhangwei: Chat) -> None:
    reply = zhangwei.say("260101000005这个订单可以退货吗，我要退")
    assert "退货期限" in reply and "截止" in reply


def test_shipped_order_cannot_be_returned_yet(lina: Chat) -> None:
    reply = lina.say("订单260101000012我要申请退货")
    assert "运输途中" in reply


def test_refund_progress(zhangwei: Chat) -> None:
    reply = zhangwei.say("我的退款什么时候到账")
    assert "退货单" in reply


def test_membership_points_and_coupons(zhangwei: Chat) -> None:
    reply = zhangwei.say("我现在有多少积分")
    assert "金卡" in reply and "优惠券" in reply


def test_membership_needs_verification_for_anonymous(anonymous: Chat) -> None:
    assert "订单号" in anonymous.say("查一下我的会员积分")
    anonymous.say("260101000021")
    reply = anonymous.say("1111")
    assert "普通会员" in reply and "积分" in reply


def test_update_email_with_confirmation(lina: Chat, stack_crm) -> None:
    lina.say("我想改一下邮箱")
    reply = lina.say("lina_new@example.com")
    assert "确认修改为" in reply
    reply = lina.say("确认")
    assert "已为您更新邮箱" in reply and "lina_new@example.com" not in reply  # masked
    from crm_adapter.models import Customer
    with stack_crm.engine.connect() as conn:
        email = conn.execute(select(Customer.email).where(Customer.id == 2)).scalar_one()
    assert email == "lina_new@example.com"


def test_invalid_birthday_is_asked_again(lina: Chat) -> None:
    lina.say("帮我改下生日")
    assert "完整的出生日期" in lina.say("我忘了")


def test_another_request_is_not_read_as_a_bad_value_forever(zhangwei: Chat) -> None:
    """Seen by hand: every message after 「请输入新的生日」 got 「生日格式没看懂」; then it was
    left with 「请再说一次」.  Now the request is answered and the question asked again."""
    assert "新的生日" in zhangwei.say("我要改一下生日")
    reply = zhangwei.say("给你们打个3分吧")
    assert "3分" in reply and "新的生日" in reply and "出生日期" not in reply, reply
    assert "1990-05-01" in zhangwei.say("1990年5月1日")  # the resumed form takes the answer, not the rating
    assert "已为您更新生日" in zhangwei.say("对")


def test_another_form_started_mid_way_takes_over(zhangwei: Chat) -> None:
    assert "新的生日" in zhangwei.say("我要改一下生日")
    assert "已为您退订" in zhangwei.say("以后别再给我发促销短信了，退订")


def test_the_new_value_given_with_the_request_is_not_asked_for(lina: Chat) -> None:
    """Seen by hand: 「我要把生日改成1990年5月1日」 was answered 「请输入新的生日」."""
    reply = lina.say("我要把生日改成1990年5月1日")
    assert "确认修改为：1990-05-01" in reply and "请输入" not in reply, reply
    assert "已为您更新生日" in lina.say("确认")


def test_an_email_that_is_not_one_is_refused_before_confirming(lina: Chat) -> None:
    lina.say("我想改一下邮箱")
    reply = lina.say("我的新邮箱")
    assert "邮箱格式好像不对" in reply and "确认修改" not in reply, reply


def test_unsubscribe_records_consent(zhangwei: Chat, stack_crm) -> None:
    assert "已为您退订" in zhangwei.say("以后别再给我发促销短信了，退订")
    from crm_adapter.models import Consent
    with stack_crm.engine.connect() as conn:
        rows = conn.execute(select(Consent).where(Consent.customer_id == 1)).all()
    assert any(not row.granted and row.purpose == "marketing" for row in rows)


def test_rating_is_recorded(zhangwei: Chat) -> None:
    assert "5分" in zhangwei.say("服务很好，给你们打5分")


def test_low_rating_is_answered_with_an_apology(anonymous: Chat) -> None:
    assert "抱歉" in anonymous.say("/rate_service{\"rating\": \"1分\"}")


def test_rating_without_score_asks_for_one(anonymous: Chat) -> None:
    assert "1-5分" in anonymous.say("/rate_service")
