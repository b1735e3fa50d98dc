"""A signed-in staff member talking to the desk over HTTP (session cookie + CSRF header),
as the desk's own pages do; used by the desk tests and the channel handoff tests."""
from __future__ import annotations

from typing import Any, Optional

import requests

PASSWORD = "correct-horse-battery"


class DeskClient:
    """One signed-in staff member talking to the desk over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        self.csrf: Optional[str] = None
        self.username: Optional[str] = None

    def login(self, username: str, password: str = PASSWORD) -> requests.Response:
        response = self.http.post(f"{self.base}/desk/login", data={"username": username, "password": password},
                                  allow_redirects=False, timeout=30)
        if response.status_code == 302:
            self.username = username
            self.csrf = self.get("/desk/api/me").json()["csrf_token"]
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.http.get(f"{self.base}{path}", timeout=30, **kwargs)

    def post(self, path: str, payload: Optional[dict] = None, csrf: Optional[str] = "session") -> requests.Response:
        headers = {}
        token = self.csrf if csrf == "session" else csrf
        if token is not None:
            headers["X-CSRF-Token"] = token
        return self.http.post(f"{self.base}{path}", json=payload or {}, headers=headers, allow_redirects=False,
                              timeout=60)

    def act(self, escalation_id: int, action: str, payload: Optional[dict] = None) -> requests.Response:
        return self.post(f"/desk/api/conversations/{escalation_id}/{action}", payload)
