"""What both fake CRMs share: a threaded HTTP server on a free port and failure switches.

Switches (set by tests, read per request, all guarded by ``lock``):

* ``fail_next``: list of HTTP statuses; each API request pops one and answers
  with it (429s carry ``Retry-After: retry_after`` when that is set);
* ``delay``: seconds to sleep before answering any API request (slow server);
* ``delay_after_write``: seconds to sleep after a write was stored and
  before answering it — the client times out although the write happened;
  only for the next ``slow_writes`` successful writes (default: all);
* ``requests``: every (method, path) seen, for assertions on traffic.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit


class FakeServer:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.fail_next: list[int] = []
        self.retry_after: Optional[float] = None
        self.delay = 0.0
        self.delay_after_write = 0.0
        self.slow_writes = 10**9
        self.requests: list[tuple[str, str]] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle --------------------------------------------------------

    def start(self, port: int = 0) -> "FakeServer":
        """Serve on ``port`` (0: a free one); starting again after `stop` keeps the records."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: stop() really stops

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, body, headers = fake.dispatch(self.command, parts.path, query, raw, self.headers)
                payload = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if payload:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- request handling -------------------------------------------------

    def dispatch(self, method: str, path: str, query: dict[str, str], raw: bytes, headers: Any
                 ) -> tuple[int, Any, Optional[dict[str, str]]]:
        with self.lock:
            self.requests.append((method, path))
            forced = self.fail_next.pop(0) if self.fail_next and self.is_api(path) else None
            delay = self.delay if self.is_api(path) else 0.0
        if delay:
            time.sleep(delay)
        if forced is not None:
            extra = {"Retry-After": f"{self.retry_after:g}"} if forced == 429 and self.retry_after is not None else {}
            return forced, self.forced_body(forced), extra
        try:
            body = json.loads(raw) if raw and "json" in (headers.get("Content-Type") or "") else None
        except ValueError:
            return 400, {"code": "INVALID_REQUEST_BODY", "status": "error"}, None
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8")).items()} if body is None and raw else {}
        status, answer, extra_headers = self.route(method, path, query, body, form, headers)
        if method != "GET" and 200 <= status < 300 and self.delay_after_write:
            with self.lock:
                slow = self.slow_writes > 0
                self.slow_writes -= 1
            if slow:
                time.sleep(self.delay_after_write)
        return status, answer, extra_headers

    def count(self, method: str, prefix: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    # -- for subclasses ---------------------------------------------------

    def is_api(self, path: str) -> bool:
        return True

    def forced_body(self, status: int) -> Any:
        return {"status": "error", "code": f"HTTP_{status}"}

    def route(self, method: str, path: str, query: dict[str, str], body: Any, form: dict[str, str],
              headers: Any) -> tuple[int, Any, Optional[dict[str, str]]]:
        raise NotImplementedError
