"""A fake SMS gateway: POST / with JSON {to, text, id} and a bearer token.

Switches (besides FakeServer's ``fail_next`` and ``delay``):

* ``hold``: the next request is held unanswered (and not accepted) until
  ``release()``; ``held`` is set when one is waiting -- for killing a sender
  mid-send;
* ``accepted``: messages accepted, in order; a repeated ``id`` is answered
  200 again (as real gateways de-duplicate by client reference) but counted
  in ``duplicates`` instead.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

from tests.fakes.base import FakeServer


class FakeSmsGateway(FakeServer):
    def __init__(self, token: str = "sms-token") -> None:
        super().__init__()
        self.token = token
        self.accepted: list[dict[str, Any]] = []
        self.duplicates = 0
        self.hold = False
        self.held = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        self._release.set()

    def route(self, method: str, path: str, query: dict[str, str], body: Any, form: dict[str, str],
              headers: Any) -> tuple[int, Any, Optional[dict[str, str]]]:
        if method != "POST":
            return 405, {"error": "method"}, None
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": "token"}, None
        if not isinstance(body, dict) or not body.get("to") or not body.get("text"):
            return 400, {"error": "to and text required"}, None
        with self.lock:
            hold, self.hold = self.hold, False
        if hold:
            self.held.set()
            self._release.wait(60)
            return 503, {"error": "held"}, None
        with self.lock:
            if any(m.get("id") == body.get("id") for m in self.accepted):
                self.duplicates += 1
            else:
                self.accepted.append(body)
        return 200, {"status": "queued", "id": body.get("id")}, None
