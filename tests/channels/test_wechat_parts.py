"""The WeChat channel's parts that need no Rasa: API client, XML guard, MsgId store, config."""
from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from bot.channels.dedup import TurnStore
from bot.channels.safe_xml import BadXml, parse_xml
from bot.channels.wechat_mailbox import LateMailbox
from bot.channels.wechat import ButtonMemory, WeChatConfig, WeChatInput, split_to_limit
from bot.channels.wechat_api import WeChatApi, mask_openid
from tests.channels.wechat_peer import new_aes_key, new_openid
from tests.fakes.wechat_api import FakeWeChatApi

APPID, SECRET = "wx_parts_test", "s3cret-parts"


@pytest.fixture()
def fake() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(APPID, SECRET) as api:
        yield api


def test_customer_service_message_body_and_token_cached(fake: FakeWeChatApi) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url)
    openid = new_openid()
    assert api.send_text(openid, "您好，您的订单已发货。")
    assert api.send_text(openid, "第二条")
    assert fake.delivered_to(openid) == ["您好，您的订单已发货。", "第二条"]
    assert fake.sent[0].body == {"touser": openid, "msgtype": "text",
                                 "text": {"content": "您好，您的订单已发货。"}}
    assert len(fake.tokens_issued) == 1  # cached between calls


@pytest.mark.parametrize("errcode", [40001, 42001])
def test_rejected_token_is_refreshed_once(fake: FakeWeChatApi, errcode: int) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url)
    openid = new_openid()
    assert api.send_text(openid, "预热")
    fake.fail_next(errcode)
    assert api.send_text(openid, "换了令牌也要送到")
    assert fake.delivered_to(openid) == ["预热", "换了令牌也要送到"]
    assert len(fake.tokens_issued) == 2
    assert [m.errcode for m in fake.attempts_for(openid)] == [0, errcode, 0]


def test_token_rejected_twice_gives_up(fake: FakeWeChatApi) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url)
    openid = new_openid()
    fake.fail_next(40001, times=5)
    assert api.send_text(openid, "送不到") is False
    assert len(fake.attempts_for(openid)) == 2  # once, refreshed, once more: then stop


def test_outside_48_hours_is_not_retried(fake: FakeWeChatApi) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url)
    openid = new_openid()
    fake.close_window(openid)
    assert api.send_text(openid, "两天没说话了") is False
    assert [m.errcode for m in fake.attempts_for(openid)] == [45015]
    assert len(fake.tokens_issued) == 1


def test_wrong_secret_and_unreachable_api_fail_quietly(fake: FakeWeChatApi) -> None:
    assert WeChatApi(APPID, "wrong", fake.base_url).send_text(new_openid(), "x") is False
    assert fake.sent == []
    assert WeChatApi(APPID, SECRET, "http://127.0.0.1:9", timeout=2).send_text("o" * 28, "x") is False


FAST_RETRY = (0.01, 0.01)


@pytest.mark.parametrize("fault", ["busy", "bad_gateway", "unavailable"])
def test_transient_failures_are_retried_and_delivered_once(fake: FakeWeChatApi, fault: str) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url, retry_delays=FAST_RETRY)
    openid = new_openid()
    if fault == "busy":
        fake.fail_next(-1, times=2)  # 系统繁忙, twice: the third attempt goes through
    else:
        fake.gateway_error_next(502 if fault == "bad_gateway" else 503, times=2)
    assert api.send_text(openid, "系统忙也要送到")
    assert fake.delivered_to(openid) == ["系统忙也要送到"]


def test_busy_for_longer_than_the_retries_gives_up(fake: FakeWeChatApi) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url, retry_delays=FAST_RETRY)
    openid = new_openid()
    fake.fail_next(-1, times=5)
    assert api.send_text(openid, "一直忙") is False
    assert [m.errcode for m in fake.attempts_for(openid)] == [-1, -1, -1]  # first try + two retries
    assert api.send_text(openid, "下一条")  # the two busy answers left, then through
    assert fake.delivered_to(openid) == ["下一条"]


@pytest.mark.parametrize("status", [500, 504])
def test_a_gateway_error_that_may_have_reached_wechat_is_not_repeated(fake: FakeWeChatApi, status: int) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url, retry_delays=FAST_RETRY)
    fake.gateway_error_next(status)
    assert api.send_text(new_openid(), "不重复") is False


def test_a_read_timeout_is_not_repeated_so_the_customer_never_reads_it_twice(fake: FakeWeChatApi) -> None:
    api = WeChatApi(APPID, SECRET, fake.base_url, timeout=0.5, retry_delays=FAST_RETRY)
    openid = new_openid()
    assert api.send_text(openid, "预热")  # token fetched
    fake.stall_next(2.0)  # WeChat delivers, its answer is late
    assert api.send_text(openid, "只发一次") is False
    assert fake.delivered_to(openid) == ["预热", "只发一次"]
    assert len(fake.attempts_for(openid)) == 2


def test_a_refused_connection_is_retried_then_given_up(fake: FakeWeChatApi) -> None:
    pauses: list[float] = []
    api = WeChatApi(APPID, SECRET, "http://127.0.0.1:9", timeout=2, retry_delays=(0.25, 1.0),
                    sleep=pauses.append)
    assert api.send_text(new_openid(), "x") is False
    assert pauses == [0.25, 1.0]


@pytest.mark.parametrize("xml", [
    b"<xml><a>1</a>",  # unclosed
    b"not xml at all",
    b"<other><a>1</a></other>",  # wrong root
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
    b'<!doctype xml [<!entity a "aaaa"><!entity b "&a;&a;&a;">]><xml><a>&b;</a></xml>',
    b"<xml><a>\xff\xfe</a></xml>",
])
def test_bad_or_dangerous_xml_is_refused(xml: bytes) -> None:
    with pytest.raises(BadXml):
        parse_xml(xml)


def test_good_xml_parses() -> None:
    assert parse_xml("<xml><Content><![CDATA[你好]]></Content></xml>") == {"Content": "你好"}


def test_turn_store_claims_once_expires_and_stays_bounded() -> None:
    async def run() -> None:
        now = [0.0]
        store = TurnStore(ttl_s=10, max_entries=3, clock=lambda: now[0])
        first, is_first = store.claim("a")
        again, is_first_again = store.claim("a")
        assert is_first and not is_first_again and again is first and first.retries == 1
        for key in "bcde":
            store.claim(key)
        assert len(store) == 3  # oldest evicted beyond the cap
        assert store.claim("a")[1] is True  # "a" was evicted: a new turn
        now[0] = 11.0
        store.claim("z")
        assert len(store) == 1  # everything older than the TTL expired

    asyncio.run(run())


def test_config_disabled_without_token_and_checked_when_on() -> None:
    channel = WeChatInput.from_credentials({"token": "", "appid": "", "secret": "",
                                             "aes_key": "", "api_base": "", "reply_budget_s": ""})
    assert channel.config.enabled is False
    assert channel.get_output_channel() is None
    assert WeChatInput.from_credentials(None).config.enabled is False
    with pytest.raises(ValueError):
        WeChatConfig.from_credentials({"token": "t", "appid": "wx1", "aes_key": "short"})
    with pytest.raises(ValueError):
        WeChatConfig.from_credentials({"token": "t", "aes_key": new_aes_key()})  # no appid
    with pytest.raises(ValueError):
        WeChatConfig.from_credentials({"token": "t", "reply_budget_s": "6"})  # WeChat waits 5 s
    on = WeChatConfig.from_credentials({"token": "t", "appid": "wx1", "aes_key": new_aes_key(),
                                        "reply_budget_s": "2.5", "menu": {"X": "/greet"}})
    assert on.enabled and on.reply_budget_s == 2.5 and on.menu["X"] == "/greet"


def test_turn_messages_are_joined_within_wechat_limit() -> None:
    assert split_to_limit(["第一句", "第二句"]) == ["第一句\n\n第二句"]
    long = "好" * 1000  # 3000 bytes: over the 2048-byte limit on its own
    chunks = split_to_limit(["开头", long])
    assert all(len(c.encode()) <= 2048 for c in chunks)
    assert "".join(chunks).replace("\n\n", "") == "开头" + long


def test_numbered_reply_picks_the_button_shown() -> None:
    memory = ButtonMemory(max_entries=1)
    memory.remember("o1", [{"text": "要取消吗", "buttons": [{"title": "确认", "payload": "/affirm"},
                                                         {"title": "算了", "payload": "/deny"}]}])
    assert memory.resolve("o1", "2") == "/deny"
    assert memory.resolve("o1", "确认") == "/affirm"
    assert memory.resolve("o1", "3") == "3"
    memory.remember("o2", [{"text": "x", "buttons": [{"title": "好", "payload": "/affirm"}]}])
    assert memory.resolve("o1", "2") == "2"  # evicted (bounded)


def test_openid_masking() -> None:
    openid = new_openid()
    masked = mask_openid(openid)
    assert openid not in masked and masked.startswith(openid[:4]) and "****" in masked


def test_late_mailbox_keeps_order_bounds_and_forgets_old_answers() -> None:
    now = [0.0]
    box = LateMailbox(max_openids=2, max_texts=3, ttl_s=100.0, clock=lambda: now[0])
    assert box.take("a") == []
    assert box.hold("a", ["一", ""]) == 1 and box.hold("a", ["二", "三", "四"]) == 3
    assert box.take("a") == ["二", "三", "四"]  # oldest dropped past max_texts, order kept
    assert box.take("a") == []  # taken once
    box.hold("a", ["甲"])
    now[0] = 50.0
    box.hold("b", ["乙"])
    box.hold("c", ["丙"])  # a (least recently held) is dropped past max_openids
    assert len(box) == 2 and box.take("a") == []
    now[0] = 160.0  # b's answer is 110 s old, c's too: past ttl
    assert box.take("b") == [] and box.take("c") == []
    box.hold("d", ["旧"])
    now[0] = 270.0  # "旧" is 110 s old: dropped when something new is held
    assert box.hold("d", ["新"]) == 1 and box.take("d") == ["新"]
