"""The action server goes down and comes back: customers hear an honest apology
meanwhile (not silence), FAQs still work, and the flows work again afterwards."""
from __future__ import annotations

import uuid

import requests

from bot.rasa_server import ACTION_FAILED_REPLY
from tests.security.conftest import SecurityStack


def _say(security: SecurityStack, sender: str, text: str) -> list[str]:
    response = requests.post(f"{security.settings.rasa_url}/webhooks/rest/webhook",
                             json={"sender": sender, "message": text}, timeout=120)
    assert response.status_code == 200
    return [m.get("text", "") for m in response.json()]


def test_action_server_down_and_back(security: SecurityStack) -> None:
    stack = security.stack
    stack.stop_process("actions")
    try:
        down = _say(security, "demo-lina", "我的订单到哪了")  # a CRM flow: custom actions
        assert ACTION_FAILED_REPLY in down, down
        assert down.count(ACTION_FAILED_REPLY) == 1
        # ... and kept in the transcript, as the bot's reply to that message.
        tracker = requests.get(f"{security.settings.rasa_url}/conversations/demo-lina/tracker",
                               params={"token": security.settings.rasa_token}, timeout=60).json()
        said = [(e["event"], e.get("text")) for e in tracker["events"] if e["event"] in ("user", "bot")]
        last_user = max(i for i, (kind, _) in enumerate(said) if kind == "user")
        assert said[last_user] == ("user", "我的订单到哪了")
        assert said[last_user + 1:].count(("bot", ACTION_FAILED_REPLY)) == 1, said[last_user:]
        assert [text for kind, text in said[last_user + 1:]] == down  # the transcript is what was sent
        faq = _say(security, f"down-{uuid.uuid4().hex[:8]}", "满多少包邮")  # no custom action needed
        assert any("99元" in t for t in faq), faq
    finally:
        stack.start_process("actions", timeout=600)
    back = _say(security, "demo-zhangwei", "我的订单到哪了")
    assert ACTION_FAILED_REPLY not in back
    assert any("2601010000" in t or "订单" in t for t in back), back
