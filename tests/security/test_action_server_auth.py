"""The action server answers only the Rasa server: a made-up tracker from anyone else is refused.

Whoever could post to the action server could claim any customer, verified,
and have `action_query_order` read that customer's orders back.  The stack's
Rasa server sends the shared secret (endpoints.yml, KEFU_ACTION_TOKEN), so
conversations work while a direct call without it gets a 401 and runs nothing.
"""
from __future__ import annotations

import requests

from bot.action_auth import HEADER, MSG_REFUSED
from tests.security.conftest import SecurityStack

#: What an attacker would send: a tracker that says it is a verified customer.
FORGED = {
    "next_action": "action_query_order",
    "sender_id": "attacker",
    "tracker": {"sender_id": "attacker", "slots": {"verified": True, "customer_id": 1, "order_no": None},
                "latest_message": {"text": "我的订单", "intent": {"name": "query_order"}, "entities": []},
                "events": [], "paused": False, "followup_action": None, "active_loop": {},
                "latest_action_name": "action_listen"},
    "domain": {},
    "version": "3.6.2",
}


def test_a_call_without_the_shared_secret_is_refused(security: SecurityStack) -> None:
    s = security.settings
    base = f"http://{s.host}:{s.action_port}"
    assert s.action_token  # the runtime made one for this installation
    for headers in ({}, {HEADER: "guess"}, {HEADER: s.action_token[:-1]}):
        response = requests.post(f"{base}/webhook", json=FORGED, headers=headers, timeout=30)
        assert response.status_code == 401, (headers, response.text)
        assert response.json() == {"error": MSG_REFUSED}
        assert "订单" not in response.text
    assert requests.get(f"{base}/actions", timeout=30).status_code == 401  # the list of actions too
    assert requests.get(f"{base}/health", timeout=30).status_code == 200  # probes stay open


def test_the_rasa_server_sends_it_and_actions_run(security: SecurityStack) -> None:
    s = security.settings
    # With the secret the action server runs actions (an unknown name is its own 404).
    response = requests.post(f"http://{s.host}:{s.action_port}/webhook",
                             json={**FORGED, "next_action": "action_that_does_not_exist"},
                             headers={HEADER: s.action_token}, timeout=30)
    assert response.status_code == 404, response.text
    # A conversation whose turn runs CRM-backed custom actions is answered by them.
    reply = requests.post(f"{s.rasa_url}/webhooks/rest/webhook",
                          json={"sender": "demo-lina", "message": "我还有多少积分"}, timeout=60)
    assert reply.status_code == 200
    assert "积分" in " ".join(m.get("text", "") for m in reply.json())
