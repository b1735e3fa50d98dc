"""Proactive care end to end: the scheduler's delivery (in this process) pushing through the
real Rasa + action servers into WeChat (wechatpy peer, fake 客服消息 API) and the website widget."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, time as wall, timedelta
from typing import Iterator

import pytest
from sqlalchemy.orm import Session

from bot.channels.web_token import sign
from bot.run import Stack
from bot.scheduler import campaigns as campaigns_mod
from bot.scheduler.runner import Deliverer, china_today, run_campaign
from bot.scheduler.senders import RasaPush, Senders
from crm_adapter import CRM, policy
from crm_adapter.care import CareSettings
from crm_adapter.models import CareSend, Complaint
from tests.channels.wechat_peer import WeChatPeer, new_openid
from tests.channels.web_peer import WebPeer
from tests.crm_adapter import care_fixtures as make
from tests.fakes.wechat_api import FakeWeChatApi

CAMPAIGNS = campaigns_mod.load()


def _crm(stack: Stack) -> CRM:
    crm = CRM(stack.settings.crm_url)
    # Whatever the hour the tests run at: no quiet window (the rule itself is tested in tests/crm_adapter).
    crm.care.settings = CareSettings(quiet_start=wall(0), quiet_end=wall(0))
    return crm


def _deliverer(stack: Stack, crm: CRM) -> Deliverer:
    return Deliverer(crm, CAMPAIGNS, Senders(RasaPush(stack.settings.rasa_url, stack.settings.rasa_jwt_secret)))


def _customer(crm: CRM, name: str, **columns) -> int:
    today = china_today(crm)
    cid = make.customer(crm, name=name, birthday=today.replace(year=1990), channel="", **columns)
    make.quiet_hours(crm, cid, wall(0), wall(0))
    return cid


def _sends(crm: CRM, cid: int) -> list[CareSend]:
    with Session(crm.engine, future=True) as session:
        return list(session.query(CareSend).filter_by(customer_id=cid).order_by(CareSend.id))


@pytest.fixture
def wcrm(wechat_stack: Stack) -> Iterator[CRM]:
    crm = _crm(wechat_stack)
    yield crm
    crm.dispose()


def test_a_birthday_greeting_reaches_a_wechat_customer_in_the_48h_window(
        wechat_stack: Stack, wcrm: CRM, peer: WeChatPeer, fake_wechat: FakeWeChatApi) -> None:
    cid = _customer(wcrm, "周杰")
    openid = new_openid()
    wcrm.bind_identity("wechat", openid, cid, f"bind:{openid}")
    assert "周杰" in (peer.say(openid, "你好").text or "")  # the customer wrote: the window is open
    run_campaign(wcrm, CAMPAIGNS["birthday"], china_today(wcrm), force=True)
    _deliverer(wechat_stack, wcrm).deliver_due()
    texts = fake_wechat.wait_for(openid, 1, timeout=60)
    assert any("周杰" in t and "生日快乐" in t for t in texts)
    [send] = _sends(wcrm, cid)
    assert send.status == "delivered" and send.channel == "wechat"
    # The reply is understood as such (metrics) and a second delivery round says nothing again.
    peer.say(openid, "谢谢")
    assert _sends(wcrm, cid)[0].replied_at is not None
    _deliverer(wechat_stack, wcrm).deliver_due()
    time.sleep(0.5)
    assert sum("生日快乐" in t for t in fake_wechat.delivered_to(openid)) == 1


def test_outside_the_window_it_waits_for_the_next_message(
        wechat_stack: Stack, wcrm: CRM, peer: WeChatPeer, fake_wechat: FakeWeChatApi) -> None:
    cid = _customer(wcrm, "吴磊")
    openid = new_openid()
    wcrm.bind_identity("wechat", openid, cid, f"bind:{openid}")
    run_campaign(wcrm, CAMPAIGNS["birthday"], china_today(wcrm), force=True)
    _deliverer(wechat_stack, wcrm).deliver_due()
    assert (_sends(wcrm, cid)[0].status, _sends(wcrm, cid)[0].reason) == ("deferred", "outside_48h")
    assert fake_wechat.delivered_to(openid) == []
    answer = peer.say(openid, "在吗")
    said = (answer.text or "") + "".join(fake_wechat.wait_for(openid, 1, timeout=8))
    assert "吴磊您好" in said and "生日快乐" in said
    assert _sends(wcrm, cid)[0].status == "delivered"


def test_not_solved_reopens_the_complaint(
        wechat_stack: Stack, wcrm: CRM, peer: WeChatPeer, fake_wechat: FakeWeChatApi) -> None:
    cid = _customer(wcrm, "郑爽")
    openid = new_openid()
    wcrm.bind_identity("wechat", openid, cid, f"bind:{openid}")
    resolved = policy.utc_naive(datetime.now().astimezone()) - timedelta(days=3)
    ticket = make.complaint(wcrm, cid, created=resolved - timedelta(days=1), resolved_at=resolved)
    peer.say(openid, "你好")
    run_campaign(wcrm, CAMPAIGNS["complaint_followup"], china_today(wcrm))
    _deliverer(wechat_stack, wcrm).deliver_due()
    assert any("解决了吗" in t for t in fake_wechat.wait_for(openid, 1, timeout=60))
    before = len(fake_wechat.delivered_to(openid))
    answer = peer.say(openid, "没解决")
    said = (answer.text or "") + "".join(fake_wechat.wait_for(openid, before + 1, timeout=8)[before:])
    assert "重新打开" in said and ticket in said
    with Session(wcrm.engine, future=True) as session:
        assert session.query(Complaint).filter_by(ticket_number=ticket).one().status == "open"


def test_website_deferred_at_the_next_chat_then_pushed_live(web_stack: Stack, web_secret: str) -> None:
    crm = _crm(web_stack)
    cid = _customer(crm, "王菲", member_level="普通会员", total_spent=1800)
    uid = f"shop-{uuid.uuid4().hex[:10]}"
    crm.bind_identity("web", uid, cid, f"bind:{uid}")
    run_campaign(crm, CAMPAIGNS["birthday"], china_today(crm), force=True)
    _deliverer(web_stack, crm).deliver_due()
    assert _sends(crm, cid)[0].status == "deferred"  # no widget open
    with WebPeer(web_stack, token=sign(uid, web_secret)).open() as peer:
        opening = peer.say_text("你好")
        assert "王菲您好" in opening and "生日快乐" in opening
        assert _sends(crm, cid)[0].status == "delivered"
        # The widget is live now: the next campaign is pushed into it.
        run_campaign(crm, CAMPAIGNS["upgrade_nudge"], china_today(crm), force=True)
        _deliverer(web_stack, crm).deliver_due()
        pushed = peer.drain(quiet=2.0)
        assert any("银卡" in m.get("text", "") for m in pushed)
        assert _sends(crm, cid)[1].status == "delivered"
    crm.dispose()
