"""When the CRM is unreachable the customer gets a clear apology, the bot
keeps answering what does not need the CRM, and once the database is back
the same conversation carries on as if nothing happened."""
from __future__ import annotations

from tests.conftest import Chat, CrmOutage


def test_order_query_apologises_when_crm_down(stack_crm_down) -> None:
    chat = Chat(stack_crm_down)
    chat.say("我的订单到哪了")
    chat.say("260101000021")
    reply = chat.say("1111")
    assert "系统暂时繁忙" in reply and "没有产生任何修改" in reply


def test_complaint_apologises_when_crm_down(stack_crm_down) -> None:
    chat = Chat(stack_crm_down)
    chat.say("我要投诉")
    chat.say("物流")
    chat.say("快递员态度很差还把箱子摔坏了")
    assert "系统暂时繁忙" in chat.say("13912345678")


def test_faq_still_works_when_crm_down(stack_crm_down) -> None:
    assert "99" in Chat(stack_crm_down).say("满多少包邮")


def test_the_same_conversation_works_again_when_the_crm_is_back(stack_crm_down, crm_outage: CrmOutage) -> None:
    chat = Chat(stack_crm_down)
    chat.say("我的订单到哪了")
    chat.say("260101000021")
    assert "系统暂时繁忙" in chat.say("1111")
    crm_outage.restore()
    try:
        chat.say("我的订单到哪了")
        chat.say("260101000021")
        reply = chat.say("1111")
        assert "验证成功" in reply and "王芳" in reply and "当前状态" in reply
        assert chat.slot("verified") is True
        chat.say("我要投诉")
        chat.say("物流")
        chat.say("快递员态度很差还把箱子摔坏了")
        assert "系统暂时繁忙" not in chat.say("13912345678")
    finally:
        crm_outage.cut()
    # Down again: an honest apology, not a stale answer or an error page.
    assert "系统暂时繁忙" in chat.say("我要查一下我的积分")
