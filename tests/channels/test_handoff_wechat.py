"""Human handoff for a WeChat customer, with wechatpy as WeChat and the fake
客服消息 API: the customer asks for a person, an agent claims and replies from
the desk (over its HTTP API, as its page does), the reply arrives as a 客服消息
naming the agent, the customer's next message reaches the agent and gets no
bot answer, resolving asks for a rating as a numbered list, and "1" (= 5分)
is recorded on the escalation."""
from __future__ import annotations

import time

from bot.run import Stack
from crm_adapter import CRM
from tests.channels.wechat_peer import WeChatPeer, new_openid
from tests.desk_client import PASSWORD, DeskClient
from tests.fakes.wechat_api import FakeWeChatApi


def _turns(agent: DeskClient, escalation_id: int) -> list[dict]:
    return agent.get(f"/desk/api/conversations/{escalation_id}").json()["turns"]


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_wechat_customer_to_desk_agent_and_back_with_csat(peer: WeChatPeer, fake_wechat: FakeWeChatApi,
                                                          wechat_stack: Stack, wechat_crm: CRM) -> None:
    openid = new_openid()
    wechat_crm.bind_identity("wechat", openid, 2, f"test-bind:{openid}")  # 李娜
    asked = peer.say(openid, "我要找人工客服", aes=True).text
    assert "转接人工客服" in asked
    escalation = wechat_crm.desk.active_for("wechat", openid)
    assert escalation is not None and escalation.customer_name == "李娜"

    wechat_crm.desk.create_staff(f"li{openid[-6:]}", "小李", "agent", PASSWORD)
    agent = DeskClient(wechat_stack.settings.desk_url)
    assert agent.login(f"li{openid[-6:]}").status_code == 302
    assert agent.act(escalation.id, "claim").status_code == 200
    greeting = fake_wechat.wait_for(openid, 1, timeout=30)
    assert greeting == ["【人工客服 小李】您好，我是客服小李，很高兴为您服务。"]

    assert agent.act(escalation.id, "reply", {"text": "李女士您好，退款已经加急处理。"}).status_code == 200
    assert fake_wechat.wait_for(openid, 2, timeout=30)[1] == "【人工客服 小李】李女士您好，退款已经加急处理。"

    # The customer answers in WeChat: the agent sees it, the bot stays quiet.
    quiet = peer.say(openid, "好的，大概多久到账", aes=True)
    assert quiet.status == 200 and quiet.body == "success"
    _wait(lambda: any(t["from"] == "customer" and "多久到账" in t["text"] for t in _turns(agent, escalation.id)))

    # Resolve: the bot asks for a rating as a numbered list; "1" picks 5分.
    assert agent.act(escalation.id, "resolve").status_code == 200
    sent = fake_wechat.wait_for(openid, 4, timeout=60)
    assert "本次人工服务已结束" in sent[2] and "打分" in sent[3] and "1. 5分 非常满意" in sent[3]
    thanks = peer.say(openid, "1", aes=True).text
    assert "感谢您的评价（5分）" in thanks
    done = wechat_crm.desk.conversation(escalation.id)
    assert (done.status, done.csat_score, done.customer_id) == ("resolved", 5, 2)
    # And the bot is back: an ordinary question gets an ordinary answer.
    assert "99" in peer.say(openid, "满多少包邮", aes=True).text
