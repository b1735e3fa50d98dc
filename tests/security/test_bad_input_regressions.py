"""Regressions for what fuzzing found (tests/security/test_fuzz_http.py), one example each."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.security.conftest import SecurityStack


@pytest.mark.parametrize("body", ["null", "[]", "42", '"我要退货"', '{"sender": null, "message": "你好"}',
                                  '{"sender": "", "message": "你好"}', '{"sender": ["a"], "message": "你好"}',
                                  '{"sender": "s", "message": 42}', '{"sender": "s", "message": {"a": 1}}',
                                  '{"sender": "s", "message": "你好", "metadata": [1]}'])
def test_rest_webhook_answers_unusable_bodies_with_a_400_in_chinese(security: SecurityStack, body: str) -> None:
    # Rasa's own REST channel answered these with a 500 and a traceback in its log.
    response = requests.post(f"{security.settings.rasa_url}/webhooks/rest/webhook", data=body.encode(),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["message"].startswith("请求格式不正确")


def test_rest_webhook_still_takes_a_numeric_sender_and_no_message(security: SecurityStack) -> None:
    url = f"{security.settings.rasa_url}/webhooks/rest/webhook"
    sender = int(uuid.uuid4().int % 10**12)
    response = requests.post(url, json={"sender": sender, "message": "满多少包邮"}, timeout=60)
    assert response.status_code == 200 and "99元" in response.json()[0]["text"]
    response = requests.post(url, json={"sender": f"s-{uuid.uuid4().hex[:8]}"}, timeout=60)
    assert response.status_code == 200
