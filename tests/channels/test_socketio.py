"""The website channel end to end: a python-socketio client as the browser, the real bot behind.

One stack (action server + Rasa server with the socket.io channel + widget
server) serves every test here; each test opens its own session(s).
"""
from __future__ import annotations

import time

import jwt
import pytest
import requests
import socketio

from bot.channels.web_token import sign
from bot.run import Stack
from crm_adapter import CRM
from crm_adapter.seed import DEMO_WEB_UID
from tests.channels.web_peer import WebPeer

ORDER_PROMPT = "订单号"


def text_of(replies: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in replies)


# --- protocol ----------------------------------------------------------------

def test_session_request_is_confirmed_with_a_session_id(web_stack: Stack) -> None:
    with WebPeer(web_stack) as peer:
        peer.connect()
        new = peer.request_session(None)
        assert len(new) == 32 and int(new, 16) >= 0  # uuid4 hex
        assert peer.request_session("my-session-0001") == "my-session-0001"
        # A malformed id is not taken over: the visitor gets a fresh one.
        for bad in ("../../etc", "x" * 500, 42, ""):
            confirmed = peer.request_session(bad)
            assert confirmed != bad and len(confirmed) == 32


def test_faq_and_order_query_answered_in_chinese(web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as peer:
        assert "99" in peer.say_text("满多少包邮")
        assert ORDER_PROMPT in peer.say_text("我的订单到哪了")
        users = peer.user_events()
        assert {e["input_channel"] for e in users} == {"web"}
        assert users[-1]["text"] == "我的订单到哪了"


def test_websocket_origin_must_be_the_widget_server(web_stack: Stack) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        WebPeer(web_stack, origin="http://evil.example").connect()
    # Rasa's own health route of the channel answers too.
    assert requests.get(f"{web_stack.settings.rasa_url}/webhooks/web/", timeout=10).json() == {"status": "ok"}


# --- the signed customer token -------------------------------------------------

def test_signed_token_binds_the_chat_to_zhangwei(web_stack: Stack, web_secret: str) -> None:
    with WebPeer(web_stack, token=sign(DEMO_WEB_UID, web_secret)).open() as peer:
        assert "张伟您好" in peer.say_text("你好")
        order = peer.say_text("我的快递到哪了")
        assert "订单 2601010000" in order and "当前状态" in order and ORDER_PROMPT not in order
        metadata = peer.user_events()[-1]["metadata"]
        assert metadata["kefu_web_uid"] == DEMO_WEB_UID and metadata["channel"] == "web"
        assert "token" not in metadata  # the credential never reaches the tracker
        slots = peer.tracker()["slots"]
        assert slots["verified"] is True and slots["customer_id"] == "1"


def _tokens(secret: str) -> dict[str, str | None]:
    now = int(time.time())
    return {
        "unsigned": None,
        "wrong-secret": sign(DEMO_WEB_UID, "x" * 40),
        "expired": sign(DEMO_WEB_UID, secret, ttl_s=-600),
        "alg-none": jwt.encode({"uid": DEMO_WEB_UID, "exp": now + 600}, None, algorithm="none"),
        "tampered": _tamper(sign("someone-else", secret)),
        "no-exp": jwt.encode({"uid": DEMO_WEB_UID}, secret, algorithm="HS256"),
        "garbage": "not.a.token",
        "huge": "a" * 10_000,
    }


def _tamper(token: str) -> str:
    """Swap the signed payload for one naming 张伟, keeping the old signature."""
    header, _, signature = token.split(".")
    forged = jwt.utils.base64url_encode(
        f'{{"uid":"{DEMO_WEB_UID}","exp":{int(time.time()) + 600}}}'.encode()).decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("kind", ["unsigned", "wrong-secret", "expired", "alg-none", "tampered",
                                  "no-exp", "garbage", "huge"])
def test_bad_token_means_anonymous_and_asked_to_verify(web_stack: Stack, web_secret: str, kind: str) -> None:
    token = _tokens(web_secret)[kind]
    with WebPeer(web_stack, token=token).open() as peer:
        reply = peer.say_text("我的订单到哪了")
        assert ORDER_PROMPT in reply and "张伟" not in reply and "错误" not in reply
        assert "kefu_web_uid" not in peer.user_events()[-1]["metadata"]
        assert not peer.tracker()["slots"].get("verified")
    if kind == "unsigned":
        return  # an anonymous visitor is not worth a log line
    log = (web_stack.log_dir / "rasa.log").read_text(errors="replace")
    assert "customer token rejected" in log
    assert token[-30:] not in log  # the token itself is never logged


def test_clock_skew_within_leeway_is_accepted(web_stack: Stack, web_secret: str) -> None:
    # Expired 10 s ago by our clock: the shop's clock may run behind (leeway 30 s).
    token = sign(DEMO_WEB_UID, web_secret, ttl_s=-10)
    with WebPeer(web_stack, token=token).open() as peer:
        assert "张伟您好" in peer.say_text("你好")


def test_client_cannot_forge_the_verified_uid(web_stack: Stack, web_secret: str) -> None:
    # No token, but the trusted key set by hand: ignored.
    with WebPeer(web_stack).open() as peer:
        assert "张伟" not in peer.say_text("你好", {"kefu_web_uid": DEMO_WEB_UID})
        assert "kefu_web_uid" not in peer.user_events()[-1]["metadata"]
        assert ORDER_PROMPT in peer.say_text("我的订单到哪了", {"kefu_web_uid": DEMO_WEB_UID})
    # A valid token for an unknown shop user plus the key naming 张伟: the token wins.
    with WebPeer(web_stack, token=sign("shop-user-777", web_secret)).open() as peer:
        assert "张伟" not in peer.say_text("你好", {"kefu_web_uid": DEMO_WEB_UID})
        assert peer.user_events()[-1]["metadata"]["kefu_web_uid"] == "shop-user-777"
    # A session id that equals 张伟's uid (or his REST sender id) recognises nobody.
    with WebPeer(web_stack).open(session_id=DEMO_WEB_UID) as peer:
        assert peer.session_id == DEMO_WEB_UID
        assert "张伟" not in peer.say_text("你好")
        assert not peer.tracker()["slots"].get("verified")


# --- session persistence ---------------------------------------------------------

def test_reconnect_with_the_same_session_keeps_the_conversation(web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as first:
        assert ORDER_PROMPT in first.say_text("我的订单到哪了")
        first.say_text("260101000021")
        assert "260101000021" in first.say_text("1111")  # verified as 王芳 (seed)
        session = first.session_id
    # The page reloads: a new socket asks for the stored session id.
    with WebPeer(web_stack).open(session_id=session) as again:
        assert again.session_id == session
        reply = again.say_text("我的订单到哪了")
        assert "260101000021" in reply and ORDER_PROMPT not in reply.replace("订单号 ", "")
        texts = [e["text"] for e in again.user_events()]
        assert texts[0] == "我的订单到哪了" and texts[-1] == "我的订单到哪了" and len(texts) == 4


# --- delivery once, over a bad connection (message ids) --------------------------

def _message(peer: WebPeer, text: str, message_id: object) -> dict:
    return {"message": text, "session_id": peer.session_id, "customData": {}, "message_id": message_id}


def test_a_message_re_sent_after_it_was_answered_gets_the_stored_answer_not_a_second_turn(
        web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as peer:
        data = _message(peer, "满多少包邮", "web-m-0001")
        assert peer.client.call("user_uttered", data, timeout=60) == {"message_id": "web-m-0001",
                                                                     "status": "processed"}
        first = peer.drain()
        assert "99" in text_of(first) and all(m.get("in_reply_to") == "web-m-0001" for m in first)
        assert peer.client.call("user_uttered", data, timeout=60) == {"message_id": "web-m-0001",
                                                                     "status": "replayed"}
        again = peer.drain()
        assert text_of(again) == text_of(first)
        assert all(m.get("replay_of") == "web-m-0001" and "in_reply_to" not in m for m in again)
        users = peer.user_events()
        assert [(e["text"], e["message_id"]) for e in users] == [("满多少包邮", "web-m-0001")]


def test_a_message_sent_just_before_the_socket_dropped_is_answered_once_after_reconnecting(
        web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as first:
        session = first.session_id
        first.emit_raw(_message(first, "我的订单到哪了", "web-m-0002"))
    # The page comes back on a new socket and re-sends what was never acknowledged.
    with WebPeer(web_stack).open(session_id=session) as again:
        ack = again.client.call("user_uttered", _message(again, "我的订单到哪了", "web-m-0002"), timeout=90)
        assert ack["message_id"] == "web-m-0002" and ack["status"] in ("processed", "replayed")
        replies = again.drain(quiet=1.0)
        assert ORDER_PROMPT in text_of(replies)
        assert [e["text"] for e in again.user_events()] == ["我的订单到哪了"]


def test_a_re_send_while_the_first_is_processed_waits_for_it_and_is_not_processed_twice(
        web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as peer:
        acks: list[dict] = []
        data = _message(peer, "有什么推荐的吗", "web-m-0003")
        peer.client.emit("user_uttered", data, callback=acks.append)
        peer.client.emit("user_uttered", data, callback=acks.append)
        deadline = time.monotonic() + 90
        while len(acks) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(a["status"] for a in acks) == ["processed", "replayed"]
        replies = peer.drain(quiet=1.0)
        answered = [m for m in replies if m.get("in_reply_to") == "web-m-0003"]
        replayed = [m for m in replies if m.get("replay_of") == "web-m-0003"]
        assert answered and text_of(replayed) == text_of(answered)
        assert [e["text"] for e in peer.user_events()] == ["有什么推荐的吗"]


@pytest.mark.parametrize("bad_id", ["<script>alert(1)</script>", "x" * 500, 12345, ""])
def test_a_malformed_message_id_is_ignored_and_the_message_still_answered(web_stack: Stack, bad_id: object) -> None:
    with WebPeer(web_stack).open() as peer:
        assert peer.client.call("user_uttered", _message(peer, "满多少包邮", bad_id), timeout=60) is None
        peer.wait_turn(1, 60)
        replies = peer.drain()
        assert "99" in text_of(replies) and not any("in_reply_to" in m for m in replies)


def test_second_tab_of_the_same_session_receives_the_replies(web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as tab1, WebPeer(web_stack) as tab2:
        tab2.open(session_id=tab1.session_id)
        assert "99" in tab1.say_text("满多少包邮")
        assert "99" in text_of(tab2.drain(quiet=1.0))


def test_agent_reply_is_pushed_to_the_browser(web_stack: Stack) -> None:
    """get_output_channel works: the desk's way (bot event, output_channel=latest) reaches the socket."""
    s = web_stack.settings
    with WebPeer(web_stack).open() as peer:
        peer.say_text("你好")
        response = requests.post(
            f"{s.rasa_url}/conversations/{peer.session_id}/tracker/events",
            params={"token": s.rasa_token, "output_channel": "latest", "execute_side_effects": "true"},
            json={"event": "bot", "text": "您好，我是人工客服小王。",
                  "data": {"image": f"{s.web_url}/widget/static/kefu-logo.svg"}},
            timeout=30)
        assert response.status_code == 200, response.text
        pushed = peer.drain(quiet=2.0)
        assert "您好，我是人工客服小王。" in text_of(pushed)
        assert any(m.get("attachment", {}).get("payload", {}).get("src", "").endswith("kefu-logo.svg")
                   for m in pushed)


# --- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "😀😀😀🙏", "啊" * 5000, "我的訂單到哪裡了",
                                  "<script>alert('x')</script>"],
                         ids=["empty", "emoji", "5000-chars", "traditional", "script"])
def test_bad_input_gets_a_clear_reply_and_no_crash(web_stack: Stack, text: str) -> None:
    with WebPeer(web_stack).open() as peer:
        reply = peer.say_text(text)
        assert reply.strip(), f"no reply to {text[:20]!r}"
        assert "<script>" not in reply
        if text == "我的訂單到哪裡了":
            assert "订单号" in reply
        assert "99" in peer.say_text("多少钱包邮")  # still talking


def test_malformed_packets_are_ignored_and_the_server_keeps_serving(web_stack: Stack) -> None:
    with WebPeer(web_stack).open() as peer:
        peer.emit_raw("just a string")
        peer.emit_raw(["a", "list"])
        peer.emit_raw({"message": "你好"})  # no session id
        peer.emit_raw({"message": "你好", "session_id": "../bad"})
        peer.emit_raw({"message": {"nested": 1}, "session_id": peer.session_id,
                       "customData": "{not json"})
        peer.wait_turn(1, timeout=60)  # the last one counts, as an empty message
        peer.drain()
        assert "99" in peer.say_text("满多少包邮", {"token": 12345, "extra": "x" * 100})
        assert len(peer.user_events()) == 2


def test_tokens_and_pii_stay_out_of_the_logs(web_stack: Stack, web_secret: str) -> None:
    token = sign(DEMO_WEB_UID, web_secret)
    with WebPeer(web_stack, token=token).open() as peer:
        peer.say_text("你好")
    logs = "".join(p.read_text(errors="replace") for p in web_stack.log_dir.glob("*.log"))
    assert token not in logs and web_secret not in logs


@pytest.fixture()
def web_crm(web_stack: Stack) -> CRM:
    return CRM(web_stack.settings.crm_url)


def test_a_bound_web_identity_for_another_customer(web_stack: Stack, web_secret: str, web_crm: CRM) -> None:
    """Any shop uid bound in the CRM is recognised, not only the demo one."""
    web_crm.bind_identity("web", "shop-user-lina", 2, "test-bind:shop-user-lina")
    with WebPeer(web_stack, token=sign("shop-user-lina", web_secret)).open() as peer:
        assert "李娜您好" in peer.say_text("你好")
