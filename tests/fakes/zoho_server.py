"""A fake Zoho CRM (accounts + API v2) following the shapes Zoho documents.

Only what Kefu uses: the OAuth refresh-token grant, Contacts and Cases
(list, get, search by one ``equals`` criterion, create, update) and Notes
under a Contact. Responses look like Zoho's:

* writes: ``{"data": [{"code": "SUCCESS", "details": {"id": …}, "status": "success"}]}``
  (201 for creates, 200 for updates); a per-record error
  ``{"code": "INVALID_DATA", "details": {"api_name": …}, "message": …, "status": "error"}``
  comes back inside ``data`` with HTTP 400 (every record failed);
* reads: ``{"data": [...], "info": {"page", "per_page", "count", "more_records"}}``;
  an empty search or missing record is 204 No Content;
* an unknown or expired token is 401 ``{"code": "INVALID_TOKEN"}``;
* 429 answers ``{"code": "TOO_MANY_REQUESTS"}``.

Switches beyond `FakeServer`'s: ``token_ttl`` (seconds a new token lives),
``expire_tokens()``, ``invalid_fields`` (api names answered with INVALID_DATA),
``unique_fields`` (api names answered with DUPLICATE_DATA when taken),
``per_page_cap`` (to force paging), ``refuse_refresh`` (bad client setup),
``search_lag`` (seconds before a new record shows up in search results, as
Zoho's search index lags behind writes).
"""
from __future__ import annotations

import itertools
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from .base import FakeServer

CLIENT_ID = "1000.KEFUTESTCLIENT"
CLIENT_SECRET = "test-client-secret"
REFRESH_TOKEN = "1000.test-refresh-token"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_CRITERIA_RE = re.compile(r"^\((\w+):equals:(.*)\)$")
_CST = timezone(timedelta(hours=8))


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


class FakeZoho(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.token_ttl = 3600
        self.tokens: dict[str, float] = {}
        self.refresh_count = 0
        self.rejected_tokens = 0
        self.refuse_refresh = False
        self.invalid_fields: set[str] = set()
        self.unique_fields: set[str] = set()
        self.per_page_cap = 200
        self.search_lag = 0.0
        self._written_at: dict[str, float] = {}
        self.modules: dict[str, dict[str, dict[str, Any]]] = {"Contacts": {}, "Cases": {}}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(4150868000000624001)

    # -- helpers for tests ------------------------------------------------

    def add_contact(self, **fields: Any) -> str:
        with self.lock:
            record_id = str(next(self._ids))
            self.modules["Contacts"][record_id] = {
                "id": record_id, "Created_Time": self._now(), **fields,
            }
            return record_id

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def records(self, module: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.modules[module].values()]

    @staticmethod
    def _now() -> str:
        return datetime.now(_CST).replace(microsecond=0).isoformat()

    # -- FakeServer hooks -------------------------------------------------

    def is_api(self, path: str) -> bool:
        return path.startswith("/crm/")

    def forced_body(self, status: int) -> Any:
        if status == 429:
            return {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "too many requests", "status": "error"}
        return {"code": "INTERNAL_ERROR", "details": {}, "message": "internal error", "status": "error"}

    def route(self, method: str, path: str, query: dict[str, str], body: Any, form: dict[str, str],
              headers: Any) -> tuple[int, Any, Optional[dict[str, str]]]:
        if path == "/oauth/v2/token" and method == "POST":
            return self._token(form)
        if not path.startswith("/crm/v2/"):
            return 404, {"code": "INVALID_URL_PATTERN", "status": "error"}, None
        auth = headers.get("Authorization") or ""
        token = auth[len("Zoho-oauthtoken "):] if auth.startswith("Zoho-oauthtoken ") else ""
        with self.lock:
            valid = self.tokens.get(token, 0) > time.time()
        if not valid:
            with self.lock:
                self.rejected_tokens += 1
            return 401, {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",
                         "status": "error"}, None
        parts = path[len("/crm/v2/"):].strip("/").split("/")
        with self.lock:
            if len(parts) == 3 and parts[0] == "Contacts" and parts[2] == "Notes":
                return self._notes(method, parts[1], query, body)
            module = parts[0]
            if module not in self.modules:
                return 400, {"code": "INVALID_MODULE", "status": "error"}, None
            if len(parts) == 2 and parts[1] == "search" and method == "GET":
                return self._search(module, query)
            if len(parts) == 2 and method == "GET":
                record = self.modules[module].get(parts[1])
                return (200, {"data": [dict(record)]}, None) if record else (204, None, None)
            if len(parts) == 1 and method == "GET":
                return self._page(list(self.modules[module].values()), query)
            if len(parts) == 1 and method in ("POST", "PUT"):
                return self._write(module, method, body)
        return 400, {"code": "INVALID_URL_PATTERN", "status": "error"}, None

    # -- endpoints --------------------------------------------------------

    def _token(self, form: dict[str, str]) -> tuple[int, Any, None]:
        good = (
            not self.refuse_refresh
            and form.get("grant_type") == "refresh_token"
            and form.get("client_id") == CLIENT_ID
            and form.get("client_secret") == CLIENT_SECRET
            and form.get("refresh_token") == REFRESH_TOKEN
        )
        if not good:
            return 200, {"error": "invalid_code"}, None  # Zoho really answers 200 here
        with self.lock:
            self.refresh_count += 1
            token = f"1000.access-{self.refresh_count}"
            self.tokens[token] = time.time() + self.token_ttl
        return 200, {"access_token": token, "api_domain": self.url, "token_type": "Bearer",
                     "expires_in": self.token_ttl}, None

    def _page(self, rows: list[dict[str, Any]], query: dict[str, str]) -> tuple[int, Any, None]:
        if not rows:
            return 204, None, None
        page = max(1, int(query.get("page") or 1))
        per_page = min(int(query.get("per_page") or 200), self.per_page_cap, 200)
        chunk = rows[(page - 1) * per_page: page * per_page]
        if not chunk:
            return 204, None, None
        return 200, {"data": [dict(r) for r in chunk], "info": {
            "per_page": per_page, "count": len(chunk), "page": page,
            "more_records": page * per_page < len(rows)}}, None

    def _search(self, module: str, query: dict[str, str]) -> tuple[int, Any, None]:
        match = _CRITERIA_RE.match(query.get("criteria") or "")
        if not match:
            return 400, {"code": "INVALID_QUERY", "details": {}, "message": "invalid query formed",
                         "status": "error"}, None
        field, value = match.group(1), _unescape(match.group(2))
        visible_before = time.monotonic() - self.search_lag
        rows = [r for r in self.modules[module].values()
                if str(r.get(field)) == value and r.get(field) is not None
                and self._written_at.get(r["id"], 0.0) <= visible_before]
        return self._page(rows, query)

    def _check(self, module: str, record: dict[str, Any], record_id: Optional[str]) -> Optional[dict[str, Any]]:
        for field, value in record.items():
            if field in self.invalid_fields:
                return _error("INVALID_DATA", field, "invalid data")
            if field == "Email" and value and not EMAIL_RE.match(str(value)):
                return _error("INVALID_DATA", field, "invalid data")
            if field in self.unique_fields and value is not None:
                taken = any(str(r.get(field)) == str(value) and r["id"] != record_id
                            for r in self.modules[module].values())
                if taken:
                    return _error("DUPLICATE_DATA", field, "duplicate data")
        if module == "Contacts" and record_id is None and not record.get("Last_Name"):
            return _error("MANDATORY_NOT_FOUND", "Last_Name", "required field not found")
        return None

    def _write(self, module: str, method: str, body: Any) -> tuple[int, Any, None]:
        rows = (body or {}).get("data")
        if not isinstance(rows, list) or not rows:
            return 400, {"code": "INVALID_DATA", "details": {}, "message": "body", "status": "error"}, None
        results = []
        for row in rows:
            record_id = str(row.get("id")) if method == "PUT" else None
            if method == "PUT" and record_id not in self.modules[module]:
                results.append(_error("INVALID_DATA", "id", "the related id given seems to be invalid"))
                continue
            problem = self._check(module, row, record_id)
            if problem:
                results.append(problem)
                continue
            now = self._now()
            if method == "POST":
                record_id = str(next(self._ids))
                self.modules[module][record_id] = {**row, "id": record_id, "Created_Time": now, "Modified_Time": now}
                self._written_at[record_id] = time.monotonic()
                results.append(_ok(record_id, now, "record added"))
            else:
                assert record_id is not None
                stored = self.modules[module][record_id]
                stored.update({k: v for k, v in row.items() if k != "id"})
                stored["Modified_Time"] = now
                results.append(_ok(record_id, now, "record updated"))
        failed = sum(1 for r in results if r["status"] == "error")
        status = 400 if failed == len(results) else 202 if failed else (201 if method == "POST" else 200)
        return status, {"data": results}, None

    def _notes(self, method: str, contact_id: str, query: dict[str, str], body: Any) -> tuple[int, Any, None]:
        if contact_id not in self.modules["Contacts"]:
            return 400, {"data": [_error("INVALID_DATA", "id", "the related id given seems to be invalid")]}, None
        notes = self.notes.setdefault(contact_id, [])
        if method == "GET":
            return self._page(notes, query)
        rows = (body or {}).get("data") or []
        results = []
        for row in rows:
            now = self._now()
            note_id = str(next(self._ids))
            notes.append({**row, "id": note_id, "Parent_Id": {"id": contact_id}, "$se_module": "Contacts",
                          "Created_Time": now})
            results.append(_ok(note_id, now, "record added"))
        return 201, {"data": results}, None


def _ok(record_id: str, now: str, message: str) -> dict[str, Any]:
    return {"code": "SUCCESS", "details": {"id": record_id, "Modified_Time": now, "Created_Time": now},
            "message": message, "status": "success"}


def _error(code: str, api_name: str, message: str) -> dict[str, Any]:
    return {"code": code, "details": {"api_name": api_name}, "message": message, "status": "error"}
