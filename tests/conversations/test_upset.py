"""Strongly upset customers are handed to a person, core customers sooner."""
from __future__ import annotations

from sqlalchemy import select

from crm_adapter import CRM
from crm_adapter.models import Escalation
from tests.conftest import Chat
from tests.conversations.conftest import WANGFANG, bound_chat

APOLOGY = "非常抱歉让您不愉快了"


def reasons(crm: CRM, chat: Chat) -> list[str]:
    with crm.engine.connect() as conn:
        rows = conn.execute(select(Escalation.reason).where(Escalation.sender_id == chat.sender))
        return [row.reason for row in rows]


def test_angry_core_customer_is_escalated_at_once(zhangwei: Chat, stack_crm: CRM) -> None:
    reply = zhangwei.say("气死我了，你们这什么破服务！")
    assert APOLOGY in reply and "转接人工客服" in reply, reply
    assert reasons(stack_crm, zhangwei) == ["negative_sentiment"]
    tracker = zhangwei.tracker()
    assert tracker["latest_message"]["sentiment"]["label"] == "strong_negative"
    assert tracker["slots"]["escalation_id"]
    # Already waiting for a person: more anger does not queue the chat twice.
    assert APOLOGY not in zhangwei.say("快点！烦死了！")
    assert reasons(stack_crm, zhangwei) == ["negative_sentiment"]


def test_low_tier_customer_needs_two_angry_messages(stack, stack_crm: CRM) -> None:
    wangfang = bound_chat(stack, stack_crm, WANGFANG)
    first = wangfang.say("垃圾客服，问三遍都答非所问")
    assert APOLOGY not in first and reasons(stack_crm, wangfang) == []
    second = wangfang.say("我真的要被你们气疯了")
    assert APOLOGY in second, second
    assert reasons(stack_crm, wangfang) == ["negative_sentiment"]


def test_one_angry_message_does_not_escalate_an_anonymous_customer(anonymous: Chat,
                                                                   stack_crm: CRM) -> None:
    # What the intent model makes of an angry line varies between trainings
    # (a fallback, a complaint that opens the form, ...); whatever it is, one
    # angry message is below an anonymous customer's threshold.  The streak
    # itself (two in a row, a calm message starting over, waiting inside a
    # form) is tested on hand-built trackers in tests/bot/test_upset_policy.py.
    reply = anonymous.say("人呢？死哪去了？")
    assert APOLOGY not in reply, reply
    said = [e for e in anonymous.tracker()["events"] if e.get("event") == "user"]
    assert said[-1]["parse_data"]["sentiment"]["label"] == "strong_negative"  # (a fallback reverts it)
    assert reasons(stack_crm, anonymous) == []


def test_complaint_filed_in_anger_escalates_when_submitted(anonymous: Chat,
                                                          stack_crm: CRM) -> None:
    assert "哪方面" in anonymous.say("我要投诉")
    anonymous.say("物流！烦死了")  # inside the form: no escalation yet
    anonymous.say("你们这群骗子，快递丢了一个星期都没人管，气死我了")
    assert reasons(stack_crm, anonymous) == []
    reply = anonymous.say("13912345678")
    assert "工单号 TS" in reply and APOLOGY in reply, reply
    assert reasons(stack_crm, anonymous) == ["negative_sentiment"]


def test_calm_complaint_is_not_escalated(zhangwei: Chat, stack_crm: CRM) -> None:
    reply = zhangwei.say("我要投诉快递丢了")
    assert APOLOGY not in reply
    assert zhangwei.tracker()["latest_message"]["sentiment"]["label"] == "other"
    assert reasons(stack_crm, zhangwei) == []
