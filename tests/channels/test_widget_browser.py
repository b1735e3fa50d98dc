"""The chat widget in a real browser: Debian's Chromium driven by Playwright
(tests/browser.py: the binary, the local-only guard, screenshots)."""
from __future__ import annotations

import re

import requests
from playwright.sync_api import Page, expect

from bot.run import Stack
from tests.browser import (ARTIFACTS, REPLY_TIMEOUT_MS, browser_factory, chromium,  # noqa: F401 (fixtures)
                           expect_reply, messages, send, session_id)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"widget-{name}.png"), full_page=True)


def test_order_query_complaint_reload_and_quick_replies(web_stack: Stack, browser_factory) -> None:
    browser = browser_factory()
    page = browser.page()
    page.goto(f"{web_stack.settings.web_url}/")
    expect(page.locator("#shop-user")).to_have_text("已登录：张伟")
    page.get_by_role("button", name="打开在线客服").click()
    expect(page.locator(".kefu-panel")).to_be_visible()
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)

    # A quick-reply button sends its payload and shows its title.
    page.locator(".kefu-quick-reply", has_text="运费规则").click()
    expect(page.locator(".kefu-user .kefu-bubble").last).to_have_text("运费规则")
    expect(messages(page)).to_contain_text("张伟您好", timeout=REPLY_TIMEOUT_MS)  # recognised by token
    expect_reply(page, "99")

    # Typing indicator: shown the moment a message goes out, gone with the answer.
    shown = page.evaluate("""() => {
        const input = document.querySelector('.kefu-input');
        input.value = '我的订单到哪了';
        document.querySelector('.kefu-composer').requestSubmit();
        return !document.querySelector('.kefu-typing').hidden;
    }""")
    assert shown
    expect_reply(page, "当前状态")
    expect(page.locator(".kefu-typing")).to_be_hidden()
    assert "订单号（12位" not in messages(page).inner_text()  # no verification asked
    shot(page, "order-query")

    # A complaint through the form, its category chosen with the bot's buttons.
    send(page, "我要投诉")
    expect_reply(page, "哪方面")
    page.locator(".kefu-quick-reply", has_text="物流配送").click()
    expect_reply(page, "详细描述")
    send(page, "快递三天了都没更新物流信息，打电话也没人接")
    expect(messages(page)).to_contain_text(re.compile(r"工单号 TS\d+"), timeout=REPLY_TIMEOUT_MS)
    # Old buttons are gone once answered (only the last message carries any).
    expect(page.locator(".kefu-quick-reply", has_text="物流配送")).to_have_count(0)
    shot(page, "complaint")

    # Reload: the same session, the transcript is still there, and the chat goes on.
    before = session_id(page)
    bubbles = page.locator(".kefu-msg").count()
    page.reload()
    page.get_by_role("button", name="打开在线客服").click()
    expect(page.locator(".kefu-msg")).to_have_count(bubbles)
    expect(messages(page)).to_contain_text(re.compile(r"工单号 TS\d+"))
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)
    assert session_id(page) == before
    send(page, "我之前的投诉处理得怎么样了")
    expect_reply(page, "工单 TS")
    shot(page, "after-reload")
    tracker = requests.get(f"{web_stack.settings.rasa_url}/conversations/{before}/tracker",
                           params={"token": web_stack.settings.rasa_token}, timeout=30).json()
    texts = [e["text"] for e in tracker["events"] if e.get("event") == "user"]
    assert texts[0] == "满多少包邮" and texts[-1] == "我之前的投诉处理得怎么样了"
    browser.assert_local_only()


def test_bot_text_is_escaped_and_images_stay_local(web_stack: Stack, browser_factory) -> None:
    browser = browser_factory()
    page = browser.page()
    page.goto(f"{web_stack.settings.web_url}/widget/")
    send(page, "你好")
    expect_reply(page, ".")
    s = web_stack.settings
    evil = "<img src=x onerror=\"window.__xss=1\"><b>粗体</b>"

    def push(event: dict) -> None:
        response = requests.post(
            f"{s.rasa_url}/conversations/{session_id(page)}/tracker/events",
            params={"token": s.rasa_token, "output_channel": "latest", "execute_side_effects": "true"},
            json=event, timeout=30)
        assert response.status_code == 200, response.text

    push({"event": "bot", "text": evil})
    expect(page.locator(".kefu-bot .kefu-bubble").last).to_have_text(evil)
    push({"event": "bot", "data": {"image": f"{s.web_url}/widget/static/kefu-logo.svg"}})
    image = page.locator(".kefu-messages img.kefu-image")
    expect(image).to_have_count(1)
    page.wait_for_function("() => document.querySelector('img.kefu-image').naturalWidth > 0")
    push({"event": "bot", "data": {"image": "https://img.example.com/tracker.png"}})
    expect(page.locator(".kefu-bot .kefu-bubble").last).to_have_text("[图片无法显示]")
    assert page.locator(".kefu-messages b").count() == 0
    assert page.evaluate("() => window.__xss") is None
    shot(page, "escaping")
    browser.assert_local_only()


def test_phone_screen_guest(web_stack: Stack, browser_factory) -> None:
    browser = browser_factory({"width": 375, "height": 667})
    page = browser.page()
    page.goto(f"{web_stack.settings.web_url}/?guest=1")
    expect(page.locator("#shop-user")).to_have_text("游客")
    page.get_by_role("button", name="打开在线客服").click()
    panel = page.locator(".kefu-panel").bounding_box()
    assert panel and panel["width"] == 375 and panel["height"] == 667  # the whole screen
    page.locator(".kefu-quick-reply", has_text="查订单").click()
    expect_reply(page, "订单号")  # anonymous: asked to verify
    assert "张伟" not in messages(page).inner_text()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    input_box = page.locator(".kefu-composer").bounding_box()
    assert input_box and input_box["y"] + input_box["height"] <= 667
    shot(page, "phone-375")
    browser.assert_local_only()


def test_reconnects_after_the_connection_drops(web_stack: Stack, browser_factory) -> None:
    browser = browser_factory()
    page = browser.page()
    page.goto(f"{web_stack.settings.web_url}/widget/")
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)
    # Drop the transport as a flaky network would; the client reconnects with backoff.
    page.evaluate("() => window.kefuWidget.socket.io.engine.close()")
    expect(page.locator(".kefu-banner")).to_contain_text("连接", timeout=10_000)
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)
    expect(page.locator(".kefu-banner")).to_be_hidden()
    send(page, "满多少包邮")
    expect_reply(page, "99")
    assert any(u.startswith("ws://127.0.0.1") for u in browser.seen)  # websocket, not polling
    browser.assert_local_only()


def test_a_message_whose_connection_dropped_before_the_answer_is_answered_once(web_stack: Stack,
                                                                                browser_factory) -> None:
    browser = browser_factory()
    page = browser.page()
    page.goto(f"{web_stack.settings.web_url}/widget/")
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)
    # The message goes out and, in the same instant, the connection drops: the bot's
    # answer has nowhere to go and the acknowledgement never comes.
    page.evaluate("""() => {
        window.kefuWidget.send("满多少包邮", "满多少包邮");
        window.kefuWidget.socket.io.engine.close();
    }""")
    expect(page.locator(".kefu-dot")).to_have_attribute("title", "在线", timeout=30_000)
    expect_reply(page, "99")
    page.wait_for_timeout(2_000)  # a second copy of the answer would have arrived by now
    bubbles = page.locator(".kefu-bot .kefu-bubble").all_inner_texts()
    assert sum("99" in text for text in bubbles) == 1, bubbles
    assert page.evaluate("() => window.kefuWidget.unacked.length + window.kefuWidget.outbox.length") == 0
    s = web_stack.settings
    tracker = requests.get(f"{s.rasa_url}/conversations/{session_id(page)}/tracker",
                           params={"token": s.rasa_token}, timeout=30).json()
    assert [e["text"] for e in tracker["events"] if e.get("event") == "user"] == ["满多少包邮"]
    browser.assert_local_only()
