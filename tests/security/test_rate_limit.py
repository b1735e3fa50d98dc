"""The per-sender rate limit on the real channels, and the desk's failed-login limit.

The security stack runs with a burst of RATE_BURST and RATE_PER_MINUTE (one
token every 10 s), so a sender who sends quickly meets the limit after a few
messages; the limited message is answered at once and never reaches the
model or the tracker.
"""
from __future__ import annotations

import http.client
import queue
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from bot.ratelimit import TOO_FAST_REPLY
from tests.channels.wechat_peer import new_openid
from tests.security.conftest import (LOGIN_FAILURE_BURST, RATE_BURST, TRUSTED_PROXY, SecurityStack,
                                     source_address_available)
from tests.desk_client import PASSWORD

FAQ = "满多少包邮"
SPARE = 3  # tokens that may refill while a slow machine answers the burst


def user_turns(security: SecurityStack, sender: str) -> int:
    s = security.settings
    tracker = requests.get(f"{s.rasa_url}/conversations/{sender}/tracker", params={"token": s.rasa_token},
                           timeout=30).json()
    return sum(1 for e in tracker["events"] if e.get("event") == "user")


def test_rest_sender_over_the_limit_is_told_politely_and_the_model_is_not_run(security: SecurityStack) -> None:
    url = f"{security.settings.rasa_url}/webhooks/rest/webhook"
    sender = f"fast-{uuid.uuid4().hex[:8]}"
    answers = []
    for _ in range(RATE_BURST + SPARE + 1):
        answers.append([m["text"] for m in requests.post(url, json={"sender": sender, "message": FAQ},
                                                         timeout=60).json()])
        if answers[-1] == [TOO_FAST_REPLY]:
            break
    assert answers[-1] == [TOO_FAST_REPLY], answers
    served = answers[:-1]
    assert len(served) >= RATE_BURST and all("99元" in " ".join(a) for a in served)
    assert user_turns(security, sender) == len(served)  # the refused message is not in the tracker
    other = requests.post(url, json={"sender": f"calm-{uuid.uuid4().hex[:8]}", "message": FAQ}, timeout=60)
    assert "99元" in other.json()[0]["text"]  # nobody else is slowed down


def test_wechat_sender_over_the_limit_gets_the_polite_reply(security: SecurityStack) -> None:
    openid = new_openid()
    texts = []
    for _ in range(RATE_BURST + SPARE + 1):
        answer = security.peer.say(openid, FAQ, aes=True)
        assert answer.status == 200
        texts.append(answer.text)
        if answer.text == TOO_FAST_REPLY:
            break
    assert texts[-1] == TOO_FAST_REPLY, texts
    assert len(texts) - 1 >= RATE_BURST
    assert user_turns(security, openid) == len(texts) - 1


def test_website_session_over_the_limit_gets_the_polite_reply(security: SecurityStack) -> None:
    from tests.channels.web_peer import WebPeer

    with WebPeer(security.stack).open() as peer:
        served = 0
        for _ in range(RATE_BURST + SPARE + 1):
            before = peer.user_turns()
            peer.send(FAQ)
            first = peer.replies.get(timeout=90)
            if first.get("text") == TOO_FAST_REPLY:
                break
            peer.wait_turn(before + 1, 90)
            peer.drain()
            served += 1
        else:
            pytest.fail("the website session was never limited")
        assert served >= RATE_BURST
        assert peer.user_turns() == served


def _login_from(security: SecurityStack, address: str, username: str, password: str,
                forwarded_for: str | None = None) -> tuple[int, str]:
    parts = urlsplit(security.settings.desk_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(address, 0))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        conn.request("POST", "/desk/login", body=urlencode({"username": username, "password": password}),
                     headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _agents(security: SecurityStack, prefix: str, count: int) -> list[str]:
    """New agent accounts, so that no account lock (five failures) interferes."""
    from crm_adapter import CRM

    crm = CRM(security.settings.crm_url)
    usernames = [f"{prefix}{uuid.uuid4().hex[:6]}{i}" for i in range(count)]
    for name in usernames:
        crm.desk.create_staff(name, "测试", "agent", PASSWORD)
    crm.dispose()
    return usernames


def test_desk_limits_failed_logins_per_address(security: SecurityStack) -> None:
    address = "127.0.0.2"
    if not source_address_available(address):
        pytest.skip("this host cannot bind 127.0.0.2")
    usernames = _agents(security, "spray", LOGIN_FAILURE_BURST + 1)
    # One wrong password on each of several accounts: no account lock is reached...
    for name in usernames[:LOGIN_FAILURE_BURST]:
        assert _login_from(security, address, name, "guess-123456")[0] == 401
    # ...but the address is stopped, even with a right password now.
    status, body = _login_from(security, address, usernames[-1], PASSWORD)
    assert status == 429 and "登录失败次数过多" in body
    # Another address is not affected.
    assert _login_from(security, "127.0.0.1", usernames[-1], PASSWORD)[0] == 302


def test_behind_a_trusted_proxy_the_limit_is_per_customer_address(security: SecurityStack) -> None:
    """Through our proxy (127.0.0.3) the limit follows X-Forwarded-For; from anywhere else the
    header is ignored, so a client cannot pick an address to dodge the limit."""
    for address in (TRUSTED_PROXY, "127.0.0.4"):
        if not source_address_available(address):
            pytest.skip(f"this host cannot bind {address}")
    usernames = _agents(security, "proxied", LOGIN_FAILURE_BURST + 2)
    for name in usernames[:LOGIN_FAILURE_BURST]:
        assert _login_from(security, TRUSTED_PROXY, name, "guess-123456", "198.51.100.7")[0] == 401
    status, body = _login_from(security, TRUSTED_PROXY, usernames[-1], PASSWORD, "198.51.100.7")
    assert status == 429 and "登录失败次数过多" in body
    # Another customer behind the same proxy is not locked out with the first.
    assert _login_from(security, TRUSTED_PROXY, usernames[-1], PASSWORD, "198.51.100.8")[0] == 302
    # A client that is not our proxy writing the header still counts as itself.
    for i, name in enumerate(usernames[:LOGIN_FAILURE_BURST]):
        forged = f"198.51.100.{100 + i}"
        assert _login_from(security, "127.0.0.4", name, "guess-123456", forged)[0] == 401
    assert _login_from(security, "127.0.0.4", usernames[-2], PASSWORD, "198.51.100.200")[0] == 429
