"""Human handoff end to end in two real browsers (Debian Chromium via Playwright):
a customer in the website widget asks for a person; an agent logs into the
desk in a second browser, claims the chat and replies; the customer sees the
reply; the agent resolves; the customer is asked for CSAT and answers; the
CRM holds the escalation, its timeline and the score."""
from __future__ import annotations

import re
import uuid

import requests
from playwright.sync_api import Page, expect

from bot.run import Stack
from crm_adapter import CRM
from tests.browser import (ARTIFACTS, REPLY_TIMEOUT_MS, browser_factory, chromium,  # noqa: F401 (fixtures)
                           expect_reply, messages, open_chat, send, session_id)

PASSWORD = "a-long-agent-password"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"handoff-{name}.png"), full_page=True)


def tracker(stack: Stack, sender: str) -> dict:
    s = stack.settings
    return requests.get(f"{s.rasa_url}/conversations/{sender}/tracker", params={"token": s.rasa_token},
                        timeout=30).json()


def test_widget_customer_to_desk_agent_and_back_with_csat(web_stack: Stack, browser_factory) -> None:
    crm = CRM(web_stack.settings.crm_url)
    agent = f"xiaowang{uuid.uuid4().hex[:6]}"
    crm.desk.create_staff(agent, "小王", "agent", PASSWORD)

    # The customer (signed in as 张伟 on the demo shop) asks for a person.
    customer_browser = browser_factory()
    customer = customer_browser.page()
    open_chat(customer, web_stack.settings.web_url)
    send(customer, "我要转人工")
    expect_reply(customer, "转接人工客服")
    sender = session_id(customer)
    escalation = crm.desk.active_for("web", sender)
    assert escalation is not None and escalation.status == "pending"
    assert escalation.priority == "high"  # 张伟 is a core customer
    send(customer, "我的快递三天没动了")  # queued: reaches the desk, the bot stays quiet
    expect(messages(customer)).to_contain_text("排队", timeout=REPLY_TIMEOUT_MS)  # place in the queue

    # The agent logs in to the desk in a second browser and claims the chat.
    desk_browser = browser_factory(viewport={"width": 1366, "height": 768})
    desk = desk_browser.page()
    desk.on("dialog", lambda dialog: dialog.accept())
    desk.goto(f"{web_stack.settings.desk_url}/desk/login")
    desk.locator("#username").fill(agent)
    desk.locator("#password").fill(PASSWORD)
    desk.locator("#login").click()
    item = desk.locator(f"[data-testid=queue-item][data-escalation-id='{escalation.id}']")
    expect(item).to_be_visible(timeout=30_000)
    expect(item.locator(".badge.prio-high")).to_have_count(1)
    item.click()
    expect(desk.locator("body")).to_have_attribute("data-conversation-id", str(escalation.id))
    # The transcript holds the bot's part and what the customer wrote while queued.
    expect(desk.locator("[data-testid=turn][data-from=bot]").first).to_be_visible(timeout=30_000)
    expect(desk.locator("[data-testid=turn][data-from=customer]", has_text="我的快递三天没动了")).to_have_count(1)
    expect(desk.locator("#cust-tier")).to_contain_text("核心")
    desk.locator("#claim").click()
    expect(desk.locator("#chat-head")).to_have_attribute("data-status", "open", timeout=30_000)
    expect(customer.locator(".kefu-agent").last).to_have_text("人工客服 小王", timeout=REPLY_TIMEOUT_MS)
    shot(desk, "desk-claimed")

    # The agent replies; the customer sees it, labelled; the customer answers live.
    desk.locator("#reply-text").fill("张先生您好，我查到您的快递在杭州中转站，今天会发出。")
    desk.locator("#send").click()
    expect(customer.locator(".kefu-bot .kefu-bubble").last).to_have_text(
        "张先生您好，我查到您的快递在杭州中转站，今天会发出。", timeout=REPLY_TIMEOUT_MS)
    send(customer, "好的谢谢，<b>辛苦了</b>")
    expect(desk.locator("[data-testid=turn][data-from=customer]", has_text="好的谢谢")).to_have_count(
        1, timeout=30_000)
    assert desk.locator("#transcript b").count() == 0  # customer HTML is shown as text
    shot(customer, "customer-with-agent")

    # Resolving hands back to the bot, which asks for a rating; the customer gives 5.
    desk.locator("#resolve").click()
    expect(desk.locator("#chat-head")).to_have_attribute("data-status", "resolved", timeout=30_000)
    expect_reply(customer, "打分")
    expect(messages(customer)).to_contain_text("本次人工服务已结束")
    customer.locator(".kefu-quick-reply", has_text="5分").click()
    expect_reply(customer, "感谢您的评价（5分）")
    shot(customer, "customer-rated")

    # The CRM: the escalation, resolved by the agent, with the score; its timeline.
    done = crm.desk.conversation(escalation.id)
    assert (done.status, done.resolved_by, done.csat_score) == ("resolved", agent, 5)
    assert done.first_response_at is not None and done.sender_id == sender
    kinds = [e.kind for e in crm.desk.timeline(escalation.id)]
    assert kinds[0] == "created" and "claimed" in kinds and "agent_message" in kinds
    assert kinds.index("resolved") < kinds.index("csat")
    # One story: the agent's reply is in the conversation's tracker, marked as the agent's.
    events = tracker(web_stack, sender)["events"]
    agent_turns = [e for e in events if e.get("event") == "bot" and (e.get("metadata") or {}).get("agent") == agent]
    assert any("杭州中转站" in e["text"] for e in agent_turns)
    assert not tracker(web_stack, sender).get("paused")
    # The bot answers again after the hand-back.
    send(customer, "满多少包邮")
    expect_reply(customer, "99")
    customer_browser.assert_local_only()
    desk_browser.assert_local_only()
    crm.dispose()
