"""A fake WeChat API on 127.0.0.1: access tokens and 客服消息, with switches for errors.

Real HTTP on a free port (a thread in the test process), so the channel's
client is exercised end to end.  It checks what WeChat checks for these two
calls — appid/secret for a token, a current token and a well-formed body for
a customer-service message — and records every body it accepts or refuses so
tests can assert what was sent.

Switches:
* ``fail_next(40001)`` / ``fail_next(42001)``: the next send is refused with
  that code (and the token in use is invalidated, as WeChat does);
* ``close_window(openid)``: sends to that openid get 45015 (outside 48 hours);
* ``gateway_error_next(502)``: the next send gets that HTTP status and an HTML
  page, as from a proxy in front of WeChat, and is not delivered;
* ``stall_next(seconds)``: the next send is delivered, and its answer comes
  only after ``seconds`` (a client's read timeout hits after WeChat acted).
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class SentMessage:
    openid: str
    msgtype: str
    content: str
    body: dict[str, Any]
    errcode: int
    received_at: float = field(default_factory=time.time)


class FakeWeChatApi:
    def __init__(self, appid: str, secret: str) -> None:
        self.appid = appid
        self.secret = secret
        self.tokens_issued: list[str] = []
        self.sent: list[SentMessage] = []
        self._valid_tokens: set[str] = set()
        self._fail_queue: list[int] = []
        self._closed_windows: set[str] = set()
        self._gateway_errors: list[int] = []
        self._stalls: list[float] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ----------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeWeChatApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeWeChatApi":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- switches and queries ------------------------------------------------
    def fail_next(self, errcode: int, times: int = 1) -> None:
        with self._lock:
            self._fail_queue.extend([errcode] * times)

    def gateway_error_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._gateway_errors.extend([status] * times)

    def stall_next(self, seconds: float) -> None:
        with self._lock:
            self._stalls.append(seconds)

    def _take(self, queue: list) -> Any:
        with self._lock:
            return queue.pop(0) if queue else None

    def close_window(self, openid: str) -> None:
        with self._lock:
            self._closed_windows.add(openid)

    def delivered_to(self, openid: str) -> list[str]:
        """Texts WeChat accepted for this openid, in order."""
        with self._lock:
            return [m.content for m in self.sent if m.openid == openid and m.errcode == 0]

    def wait_for(self, openid: str, count: int = 1, timeout: float = 60.0) -> list[str]:
        """Wait until `count` texts were accepted for openid; return them (maybe fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                got = [m.content for m in self.sent if m.openid == openid and m.errcode == 0]
                remaining = deadline - time.monotonic()
                if len(got) >= count or remaining <= 0:
                    return got
                self._changed.wait(remaining)

    def attempts_for(self, openid: str) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.sent if m.openid == openid]

    # --- HTTP ----------------------------------------------------------------
    def _issue_token(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if query.get("grant_type") != ["client_credential"]:
            return 200, {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != [self.appid] or query.get("secret") != [self.secret]:
            return 200, {"errcode": 40001, "errmsg": "invalid credential, appsecret"}
        token = f"TOKEN-{len(self.tokens_issued) + 1}-{secrets.token_hex(8)}"
        with self._lock:
            self.tokens_issued.append(token)
            self._valid_tokens = {token}  # a new token invalidates the old one
        return 200, {"access_token": token, "expires_in": 7200}

    def _custom_send(self, query: dict[str, list[str]], raw: bytes) -> tuple[int, dict[str, Any]]:
        token = (query.get("access_token") or [""])[0]
        try:
            body = json.loads(raw.decode("utf-8"))
            openid = str(body["touser"])
            msgtype = str(body["msgtype"])
            content = str(body["text"]["content"]) if msgtype == "text" else ""
        except (ValueError, KeyError, TypeError):
            return 200, {"errcode": 44002, "errmsg": "empty post data / bad body"}
        with self._changed:
            if token not in self._valid_tokens:
                errcode = 40001
            elif self._fail_queue:
                errcode = self._fail_queue.pop(0)
                if errcode in (40001, 42001):
                    self._valid_tokens.discard(token)
            elif openid in self._closed_windows:
                errcode = 45015
            else:
                errcode = 0
            self.sent.append(SentMessage(openid, msgtype, content, body, errcode))
            self._changed.notify_all()
        return 200, {"errcode": errcode, "errmsg": "ok" if errcode == 0 else "refused"}

    def _handler(self) -> type:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/cgi-bin/token":
                    self._reply(*api._issue_token(parse_qs(url.query)))
                else:
                    self._reply(404, {"errcode": 404, "errmsg": "not found"})

            def do_POST(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if url.path == "/cgi-bin/message/custom/send":
                    status = api._take(api._gateway_errors)
                    if status is not None:
                        page = b"<html><body>Bad Gateway</body></html>"
                        self.send_response(status)
                        self.send_header("Content-Type", "text/html")
                        self.send_header("Content-Length", str(len(page)))
                        self.end_headers()
                        self.wfile.write(page)
                        return
                    answer = api._custom_send(parse_qs(url.query), raw)
                    stall = api._take(api._stalls)
                    if stall:
                        time.sleep(stall)
                    try:
                        self._reply(*answer)
                    except OSError:  # the client gave up waiting
                        pass
                else:
                    self._reply(404, {"errcode": 404, "errmsg": "not found"})

        return Handler


def start(appid: str, secret: str) -> FakeWeChatApi:
    return FakeWeChatApi(appid, secret).start()


__all__ = ["FakeWeChatApi", "SentMessage", "start"]
