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


def _posts_on_one_connection(base_url: str, paths: list[str], body: bytes) -> list[bytes]:
    """Status lines of `paths` posted one after another on one keep-alive connection."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    statuses = []
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        reader = sock.makefile("rb")
        for path in paths:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: kefu\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            statuses.append(status.split(b" ")[1])
            if not status:
                break
    return statuses


def test_refused_posts_with_large_bodies_do_not_hang_the_connection(security: SecurityStack) -> None:
    # A refusal answered before reading a ~180 kB body left the rest of it on the keep-alive
    # connection, and the next request on that connection was never answered (a read timeout).
    import json

    body = json.dumps(["长" * 20_000, 1, "\U0010961d" * 6000]).encode()
    desk = _posts_on_one_connection(security.settings.desk_url,
                                    ["/desk/api/status", "/desk/api/conversations/1/claim", "/desk/logout",
                                     "/desk/complaints/1/assign"], body)
    assert desk == [b"401"] * 4
    widget = _posts_on_one_connection(security.settings.web_url, ["/", "/widget/", "/"], body)
    assert widget == [b"405"] * 3
