"""When the CRM is unreachable the customer gets a clear apology, and the bot
keeps answering what does not need the CRM."""
from __future__ import annotations

from tests.conftest import Chat


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
