"""The desk and the scheduler call Rasa's HTTP API with a signed header, never the token in a URL.

Why: the desk reaches Rasa through nginx in the scale-out topology, and the
request line, query string included, goes into nginx's access log: the API
token, which opens every conversation, was in that log on each desk call.
"""
from __future__ import annotations

import asyncio
import http.server
import threading
import time
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import jwt
import psutil
import pytest
import requests

from bot import rasa_auth
from bot.desk.rasa_client import RasaClient
from bot.run import Stack
from bot.scheduler.senders import RasaPush, SendError

SECRET = "s3cret-for-this-test-only-0123456789abcdef"


def _tracker(stack: Stack, headers: dict[str, str], conversation: str = "jwt-check") -> int:
    return requests.get(f"{stack.settings.rasa_url}/conversations/{conversation}/tracker",
                        headers=headers, timeout=30).status_code


def _signed(secret: str, **claims: object) -> dict[str, str]:
    now = int(time.time())
    payload = {"user": {"username": "kefu-desk", "role": "admin"}, "iat": now, "exp": now + 60, **claims}
    return {"Authorization": f"Bearer {jwt.encode(payload, secret, algorithm='HS256')}"}


def test_rasa_takes_the_signed_header_and_refuses_anything_else(stack: Stack) -> None:
    secret = stack.settings.rasa_jwt_secret
    assert _tracker(stack, rasa_auth.bearer(secret, "kefu-desk")) == 200
    assert _tracker(stack, {}) == 401
    assert _tracker(stack, rasa_auth.bearer("another-secret-entirely-0123456789", "kefu-desk")) == 401
    assert _tracker(stack, _signed(secret, exp=int(time.time()) - 3600)) == 401  # expired
    assert _tracker(stack, rasa_auth.bearer(secret, "kefu-desk", now=time.time() - 2 * rasa_auth.LIFETIME_S)) == 401
    # Rasa's own scoping: a "user" token opens only its own conversation.
    user = {"user": {"username": "jwt-mine", "role": "user"}}
    assert _tracker(stack, _signed(secret, **user), "jwt-mine") == 200
    assert _tracker(stack, _signed(secret, **user), "jwt-someone-else") == 403


def test_the_secret_is_not_on_rasas_command_line(stack: Stack) -> None:
    """`bot.rasa_server` adds it from the environment, so `ps` does not show it."""
    cmdline = " ".join(psutil.Process(stack.named["rasa"].pid).cmdline())
    assert "--enable-api" in cmdline and stack.settings.rasa_jwt_secret not in cmdline


def test_server_args_add_the_secret_once_and_only_to_run() -> None:
    env = {rasa_auth.SECRET_ENV: SECRET}
    assert rasa_auth.server_args(["rasa", "run", "--enable-api"], env) == [
        "rasa", "run", "--enable-api", f"--jwt-secret={SECRET}", "--jwt-method=HS256"]
    assert rasa_auth.server_args(["rasa", "shell"], env) == ["rasa", "shell"]
    given = ["rasa", "run", "--jwt-secret=other"]
    assert rasa_auth.server_args(given, env) == given
    assert rasa_auth.server_args(["rasa", "run"], {}) == ["rasa", "run"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in for Rasa that writes down what each request carried."""

    seen: list[tuple[str, dict[str, str]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        _Recorder.seen.append((self.path, dict(self.headers)))
        body = b'{"events": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _assert_signed_not_in_url(caller: str) -> None:
    assert _Recorder.seen
    for path, headers in _Recorder.seen:
        query = parse_qs(urlsplit(path).query)
        assert "token" not in query and SECRET not in path, path
        scheme, _, token = headers["Authorization"].partition(" ")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        assert scheme == "Bearer" and claims["user"] == {"username": caller, "role": "admin"}
        assert 0 < claims["exp"] - time.time() <= rasa_auth.LIFETIME_S


def test_the_desk_signs_each_call_and_puts_nothing_secret_in_the_url(recorder: str) -> None:
    async def calls() -> None:
        client = RasaClient(recorder, SECRET)
        try:
            await client.pause("wx-o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
            await client.resume("wx-o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
        finally:
            await client.close()

    asyncio.run(calls())
    _assert_signed_not_in_url("kefu-desk")


def test_the_scheduler_signs_each_call_and_puts_nothing_secret_in_the_url(recorder: str) -> None:
    push = RasaPush(recorder, SECRET)
    assert push.last_customer_message_at("rest-123") is None
    push.trigger("rest-123", "rest", 42)
    _assert_signed_not_in_url("kefu-scheduler")


def test_without_a_secret_rasa_refuses_and_the_callers_say_so(stack: Stack) -> None:
    with pytest.raises(SendError, match="401"):
        RasaPush(stack.settings.rasa_url, "").last_customer_message_at("jwt-check")
