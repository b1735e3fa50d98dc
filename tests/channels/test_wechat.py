"""The WeChat Official Account channel end to end: wechatpy as WeChat, the real bot behind.

One stack (action server + Rasa server with the trained model) serves every
test here; each test talks as its own new openid.
"""
from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest
import requests

from bot.channels.wechat import UNKNOWN_MENU_REPLY, UNSUPPORTED_REPLY
from bot.run import Stack
from crm_adapter import CRM
from tests.channels.wechat_peer import ACCOUNT, WeChatPeer, new_openid, sign
from tests.fakes.wechat_api import FakeWeChatApi

ZHANGWEI = 1


def tracker(stack: Stack, openid: str) -> dict:
    s = stack.settings
    response = requests.get(f"{s.rasa_url}/conversations/{openid}/tracker",
                            params={"token": s.rasa_token}, timeout=30)
    response.raise_for_status()
    return response.json()


def user_events(stack: Stack, openid: str) -> list[dict]:
    return [e for e in tracker(stack, openid)["events"] if e.get("event") == "user"]


def bound_openid(crm: CRM, customer_id: int) -> str:
    openid = new_openid()
    crm.bind_identity("wechat", openid, customer_id, f"test-bind:{openid}")
    return openid


# --- URL verification --------------------------------------------------------

def test_url_verification_echoes_echostr(peer: WeChatPeer) -> None:
    query = peer.signed_query("")
    del query["openid"]
    response = requests.get(peer.url, params={**query, "echostr": "7364529810"}, timeout=10)
    assert response.status_code == 200 and response.text == "7364529810"


def test_url_verification_with_forged_signature_is_refused(peer: WeChatPeer) -> None:
    query = peer.signed_query("", token="not-our-token")
    response = requests.get(peer.url, params={**query, "echostr": "42"}, timeout=10)
    assert response.status_code == 403 and "42" not in response.text


# --- conversations -----------------------------------------------------------

@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe-mode"])
def test_bound_customer_conversation_in_chinese(peer: WeChatPeer, wechat_crm: CRM,
                                                wechat_stack: Stack, aes: bool) -> None:
    openid = bound_openid(wechat_crm, ZHANGWEI)
    greeting = peer.say(openid, "你好", aes=aes)
    assert greeting.status == 200 and greeting.msg_type == "text"
    assert "张伟您好" in greeting.text  # recognised from the openid's CRM identity
    assert "99" in peer.say(openid, "满多少包邮", aes=aes).text
    order = peer.say(openid, "我的快递到哪了", aes=aes).text
    assert "订单 2601010000" in order and "当前状态" in order
    events = user_events(wechat_stack, openid)
    assert {e["input_channel"] for e in events} == {"wechat"}
    metadata = events[-1]["metadata"]  # Rasa adds model_id and assistant_id
    assert {k: metadata.get(k) for k in ("channel", "openid", "wechat_type")} == {
        "channel": "wechat", "openid": openid, "wechat_type": "text"}


def test_safe_mode_reply_is_encrypted_for_our_appid(peer: WeChatPeer) -> None:
    openid = new_openid()
    query = peer.signed_query(openid)
    xml = peer.text_xml(openid, "买多少钱包邮啊", peer.next_msg_id())
    answer = peer.post(xml, openid, aes=True, query=query)
    assert answer.status == 200 and "99" in answer.text  # decrypted and verified by wechatpy
    assert "包邮" not in answer.body and "<Encrypt>" in answer.body  # nothing in clear


def test_anonymous_customer_is_asked_to_verify(peer: WeChatPeer) -> None:
    reply = peer.say(new_openid(), "我的订单怎么还没发货", aes=True).text
    assert "订单号" in reply


def test_buttons_become_a_numbered_list_and_a_number_picks_one(peer: WeChatPeer,
                                                              wechat_crm: CRM) -> None:
    openid = bound_openid(wechat_crm, ZHANGWEI)
    ask = peer.say(openid, "我要取消订单260101000002", aes=True).text
    assert "确认要取消订单 260101000002" in ask
    assert "1. 确认取消" in ask and "2. 先不取消" in ask
    assert "没有取消" in peer.say(openid, "2", aes=True).text  # "2" -> /deny
    assert wechat_crm.get_order(ZHANGWEI, "260101000002").status == "paid"


# --- events and message types -----------------------------------------------

def test_subscribe_greets_and_unsubscribe_stays_silent(peer: WeChatPeer,
                                                       wechat_stack: Stack) -> None:
    openid = new_openid()
    hello = peer.post(peer.event_xml(openid, "subscribe"), openid, aes=True)
    assert hello.status == 200 and hello.text and "您好" in hello.text
    before = len(user_events(wechat_stack, openid))
    bye = peer.post(peer.event_xml(openid, "unsubscribe"), openid, aes=True)
    assert bye.status == 200 and bye.body == "success"
    assert len(user_events(wechat_stack, openid)) == before  # the bot never heard it


def test_menu_clicks_map_to_messages_and_intents(peer: WeChatPeer, wechat_crm: CRM) -> None:
    openid = bound_openid(wechat_crm, ZHANGWEI)
    assert "99" in peer.post(peer.event_xml(openid, "CLICK", "FAQ_SHIPPING"), openid).text
    order = peer.post(peer.event_xml(openid, "CLICK", "QUERY_ORDER"), openid).text
    assert "订单 2601010000" in order
    unknown = peer.post(peer.event_xml(openid, "CLICK", "NO_SUCH_KEY"), openid)
    assert unknown.text == UNKNOWN_MENU_REPLY


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe-mode"])
def test_unsupported_message_type_gets_a_polite_reply(peer: WeChatPeer, wechat_stack: Stack,
                                                      aes: bool) -> None:
    openid = new_openid()
    answer = peer.post(peer.image_xml(openid, peer.next_msg_id()), openid, aes=aes)
    assert answer.status == 200 and answer.text == UNSUPPORTED_REPLY
    location = (f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{openid}</FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType>location</MsgType>"
                f"<Location_X>31.2</Location_X><Location_Y>121.5</Location_Y><Scale>15</Scale>"
                f"<Label>上海</Label><MsgId>{peer.next_msg_id()}</MsgId></xml>")
    assert peer.post(location, openid, aes=aes).text == UNSUPPORTED_REPLY
    assert user_events(wechat_stack, openid) == []


# --- refusals ------------------------------------------------------------------

def test_forged_signature_is_refused(peer: WeChatPeer, wechat_stack: Stack) -> None:
    openid = new_openid()
    query = peer.signed_query(openid, token="guessed-token")
    answer = peer.post(peer.text_xml(openid, "你好", peer.next_msg_id()), openid, query=query)
    assert answer.status == 403
    no_signature = requests.post(peer.url, data=peer.text_xml(openid, "你好", "1").encode(),
                                 timeout=10)
    assert no_signature.status_code == 403
    assert user_events(wechat_stack, openid) == []


@pytest.mark.parametrize("offset", [-301, -3600, 400])
def test_stale_or_future_timestamp_is_refused_as_replay(peer: WeChatPeer, wechat_stack: Stack,
                                                        offset: int) -> None:
    openid = new_openid()
    xml = peer.text_xml(openid, "你好", peer.next_msg_id())
    answer = peer.post(xml, openid, aes=True, timestamp=int(time.time()) + offset)
    assert answer.status == 403
    assert user_events(wechat_stack, openid) == []


def test_bad_aes_payloads_are_rejected(peer: WeChatPeer, wechat_creds: dict,
                                       wechat_stack: Stack) -> None:
    openid = new_openid()
    query = peer.signed_query(openid)
    garbage = "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0IGF0IGFsbCEhIQ=="
    body = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt>{garbage}</Encrypt></xml>"
    signed = {**query, "encrypt_type": "aes",
              "msg_signature": sign(wechat_creds["token"], query["timestamp"], query["nonce"], garbage)}
    assert requests.post(peer.url, params=signed, data=body, timeout=10).status_code == 400
    forged = {**signed, "msg_signature": "0" * 40}
    assert requests.post(peer.url, params=forged, data=body, timeout=10).status_code == 403
    # Encrypted correctly, but for another Official Account (appid check).
    other = WeChatPeer(peer.url, wechat_creds["token"], "wx_someone_else", wechat_creds["aes_key"])
    xml = other.text_xml(openid, "你好", other.next_msg_id())
    assert other.post(xml, openid, aes=True).status == 400
    assert user_events(wechat_stack, openid) == []


def test_oversized_body_is_refused(peer: WeChatPeer) -> None:
    openid = new_openid()
    huge = peer.text_xml(openid, "好" * 40_000, peer.next_msg_id())  # ~120 KB
    assert peer.post(huge, openid).status == 413

    def chunks():  # no Content-Length: cut off while streaming
        yield f"<xml><FromUserName>{openid}</FromUserName><Content>".encode()
        for _ in range(200):
            yield b"x" * 1024
        yield b"</Content></xml>"

    response = requests.post(peer.url, params=peer.signed_query(openid), data=chunks(), timeout=10)
    assert response.status_code == 413


@pytest.mark.parametrize("body", [
    "<xml><ToUserName>gh</ToUserName><FromUserName>oX",
    "{\"not\": \"xml\"}",
    "<xml><MsgType>text</MsgType></xml>",  # no sender
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>oAAAAAAAAAAAAAAAAAAAAAAAAAAA</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>",
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    "<xml><Content>&lol2;</Content></xml>",
], ids=["truncated", "json", "no-sender", "xxe", "billion-laughs"])
@pytest.mark.parametrize("aes", [False, True], ids=["plain", "safe-mode"])
def test_malformed_or_hostile_xml_is_refused(peer: WeChatPeer, body: str, aes: bool) -> None:
    openid = new_openid()
    if aes:  # hostile XML inside a correctly encrypted envelope
        answer = peer.post(body, openid, aes=True)
    else:
        answer = peer.post(body, openid)
    assert answer.status == 400
    assert "root:" not in answer.body


def test_server_still_answers_after_all_refusals(peer: WeChatPeer) -> None:
    assert "99" in peer.say(new_openid(), "满多少包邮").text


# --- retries, late answers, push ------------------------------------------------

def test_retried_msgid_is_processed_once(peer: WeChatPeer, wechat_stack: Stack) -> None:
    openid = new_openid()
    msg_id = peer.next_msg_id()
    xml = peer.text_xml(openid, "满多少包邮", msg_id)
    answers: list = []

    def deliver(aes: bool) -> None:
        answers.append(peer.post(xml, openid, aes=aes))

    threads = [threading.Thread(target=deliver, args=(i % 2 == 1,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deliver(True)  # a later retry, after the first was answered
    assert [a.status for a in answers] == [200] * 4
    assert len({a.text for a in answers}) == 1 and "99" in answers[0].text
    events = user_events(wechat_stack, openid)
    assert len(events) == 1 and events[0]["message_id"] == msg_id


@pytest.fixture()
def frozen_action_server(wechat_stack: Stack):
    """Pause the action server (SIGSTOP) so the bot's answer is late; resume it after."""
    actions = wechat_stack.procs[0]
    paused = {"on": False}

    def pause() -> None:
        actions.send_signal(signal.SIGSTOP)
        paused["on"] = True

    def resume() -> None:
        if paused["on"]:
            actions.send_signal(signal.SIGCONT)
            paused["on"] = False

    yield pause, resume
    resume()


def test_slow_answer_goes_out_by_customer_service_api(peer: WeChatPeer, fake_wechat: FakeWeChatApi,
                                                      frozen_action_server, wechat_stack: Stack) -> None:
    pause, resume = frozen_action_server
    openid = new_openid()
    xml = peer.text_xml(openid, "满多少包邮", peer.next_msg_id())
    pause()
    started = time.monotonic()
    first = peer.post(xml, openid, aes=True)
    waited = time.monotonic() - started
    retry = peer.post(xml, openid, aes=True)  # WeChat's retry after its 5 s
    resume()
    assert first.status == 200 and first.body == "success"
    assert waited < 5.0  # WeChat gives up (and retries) at 5 s
    assert retry.status == 200 and retry.body == "success"
    delivered = fake_wechat.wait_for(openid, 1, timeout=120)
    assert delivered and "99" in delivered[0]
    body = fake_wechat.attempts_for(openid)[0].body
    assert body["touser"] == openid and body["msgtype"] == "text"
    time.sleep(1.0)
    assert len(fake_wechat.delivered_to(openid)) == len(delivered)  # the retry sent nothing more
    assert len(user_events(wechat_stack, openid)) == 1


def test_late_answer_wechat_refuses_comes_first_in_the_next_reply(
        peer: WeChatPeer, fake_wechat: FakeWeChatApi, frozen_action_server, wechat_stack: Stack) -> None:
    """A late answer the API cannot deliver (48-hour window closed) is not lost:
    it leads the passive reply to the customer's next message."""
    pause, resume = frozen_action_server
    openid = new_openid()
    fake_wechat.close_window(openid)
    pause()
    try:
        first = peer.post(peer.text_xml(openid, "满多少包邮", peer.next_msg_id()), openid, aes=True)
    finally:
        resume()
    assert first.status == 200 and first.body == "success"
    deadline = time.monotonic() + 120
    while not fake_wechat.attempts_for(openid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [m.errcode for m in fake_wechat.attempts_for(openid)] == [45015]
    time.sleep(0.5)  # the channel holds it once the API has refused
    nxt = peer.say(openid, "谢谢", aes=True)
    assert nxt.status == 200 and nxt.text, nxt
    held, _, now = nxt.text.partition("\n\n")
    assert "99" in held, nxt.text  # the free-shipping answer, first
    assert now and "99" not in now  # then the answer to 谢谢
    again = peer.say(openid, "你好", aes=True)
    assert again.text and "99" not in again.text  # delivered once, not again
    assert len(fake_wechat.attempts_for(openid)) == 1  # passive replies, no more API calls


def _push(stack: Stack, openid: str, text: str) -> requests.Response:
    """What the desk does: a bot event with side effects on the latest channel."""
    s = stack.settings
    return requests.post(
        f"{s.rasa_url}/conversations/{openid}/tracker/events",
        params={"token": s.rasa_token, "output_channel": "latest", "execute_side_effects": "true"},
        json={"event": "bot", "text": text}, timeout=30)


def test_push_through_output_channel_refreshes_token_on_40001(
        peer: WeChatPeer, fake_wechat: FakeWeChatApi, wechat_stack: Stack) -> None:
    openid = new_openid()
    assert peer.say(openid, "你好").status == 200  # latest input channel is now wechat
    text = f"人工客服小李：您好，我来帮您处理 {uuid.uuid4().hex[:6]}"
    assert _push(wechat_stack, openid, "先来一条").ok
    assert fake_wechat.wait_for(openid, 1, timeout=30) == ["先来一条"]
    tokens_before = len(fake_wechat.tokens_issued)
    fake_wechat.fail_next(40001)
    assert _push(wechat_stack, openid, text).ok
    assert fake_wechat.wait_for(openid, 2, timeout=30) == ["先来一条", text]
    assert len(fake_wechat.tokens_issued) == tokens_before + 1
    assert [m.errcode for m in fake_wechat.attempts_for(openid)] == [0, 40001, 0]


def test_push_outside_48_hour_window_is_not_retried(
        peer: WeChatPeer, fake_wechat: FakeWeChatApi, wechat_stack: Stack) -> None:
    openid = new_openid()
    assert peer.say(openid, "你好").status == 200
    fake_wechat.close_window(openid)
    assert _push(wechat_stack, openid, "这条送不到").ok  # Rasa records it; WeChat refuses it
    deadline = time.monotonic() + 30
    while not fake_wechat.attempts_for(openid) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    assert [m.errcode for m in fake_wechat.attempts_for(openid)] == [45015]
