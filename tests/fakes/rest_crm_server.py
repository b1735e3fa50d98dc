"""A fake in-house REST CRM, shaped by the same kind of mapping Kefu is given.

It stores records in *its* shape (nested JSON, its own names, its own
status words) and knows only the few paths it needs to find things:
``layout`` names the customer id, phone and email paths, the case ticket
and customer paths, the resource paths and the envelope. It honours
``Idempotency-Key`` the way such APIs promise: a repeated key gets the first
answer again and writes nothing.

Errors: 401 without the right bearer token; 422 ``{"field": …}`` for a bad
email; 409 ``{"field": …}`` for a mobile number another customer has; 404 for
unknown ids; 422 ``{"errors": [{"field": …}]}`` for any path in
``invalid_fields``. `FakeServer`'s switches give 429/5xx, slowness and lost answers.
"""
from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from .base import FakeServer

TOKEN = "rest-test-token"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")

#: A 纷享销客-like layout: nested profile, its own names, a "data" envelope.
LAYOUT = {
    "envelope": "data",
    "paths": {"customers": "/api/v2/accounts", "cases": "/api/v2/service-tickets", "notes": "/api/v2/activities"},
    "customer_id": "account_no",
    "customer_phone": "profile.mobile",
    "customer_email": "profile.email",
    "case_ticket": "external_no",
    "case_customer": "account_no",
}

#: The mapping Kefu is configured with for LAYOUT (what an operator would write in YAML).
MAPPING = {
    "envelope": "data",
    "paths": LAYOUT["paths"],
    "customer": {
        "id": "account_no", "name": "profile.name", "phone": "profile.mobile", "email": "profile.email",
        "birthday": "profile.birthday", "address": "address.detail", "city": "address.city", "tier": "grade",
        "member_level": "vip_level", "created_at": "create_time",
    },
    "case": {
        "ticket_number": "external_no", "customer_id": "account_no", "category": "type",
        "description": "content", "severity": "urgency", "status": "state", "channel": "source.channel",
        "order_number": "order_no", "contact_phone": "callback.mobile", "sender_id": "source.sender",
        "created_at": "reported_at", "sla_due_at": "due_at", "resolved_at": "closed_at",
    },
    "note": {"customer_id": "account_no", "kind": "activity_type", "summary": "text",
             "channel": "source.channel", "sender_id": "source.sender"},
    "values": {
        "tier": {"core": "A", "potential": "B", "low": "C"},
        "status": {"open": "NEW", "pending": "PROCESSING", "resolved": "DONE", "closed": "CLOSED"},
    },
}


def _get(record: Any, path: str) -> Any:
    for step in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(step)
    return record


def _merge(target: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeRestCrm(FakeServer):
    def __init__(self, layout: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        self.layout = layout or LAYOUT
        self.customers: dict[str, dict[str, Any]] = {}
        self.cases: dict[str, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.seen_keys: dict[tuple[str, str], tuple[int, Any]] = {}
        self.missing_key_posts = 0
        self.invalid_fields: set[str] = set()  # their paths answered with 422

    def add_customer(self, record: dict[str, Any]) -> None:
        with self.lock:
            record = {"create_time": datetime.now(timezone(timedelta(hours=8))).isoformat(), **record}
            self.customers[str(_get(record, self.layout["customer_id"]))] = copy.deepcopy(record)

    def is_api(self, path: str) -> bool:
        return path.startswith("/api/")

    def _wrap(self, body: Any) -> Any:
        return {self.layout["envelope"]: body, "code": 0} if self.layout["envelope"] else body

    def route(self, method: str, path: str, query: dict[str, str], body: Any, form: dict[str, str],
              headers: Any) -> tuple[int, Any, Optional[dict[str, str]]]:
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "unauthorised"}, None
        paths = self.layout["paths"]
        with self.lock:
            for resource, prefix in paths.items():
                if path == prefix or path.startswith(prefix + "/"):
                    rest = path[len(prefix):].strip("/")
                    return self._resource(resource, method, rest, query, body, headers)
        return 404, {"message": "no such path"}, None

    def _resource(self, resource: str, method: str, item: str, query: dict[str, str], body: Any,
                  headers: Any) -> tuple[int, Any, None]:
        store = {"customers": self.customers, "cases": self.cases}.get(resource)
        if method == "POST" and not item:
            key = headers.get("Idempotency-Key")
            if not key:
                self.missing_key_posts += 1
                return 400, {"message": "Idempotency-Key required"}, None
            if (resource, key) in self.seen_keys:
                status, answer = self.seen_keys[(resource, key)]
                return status, copy.deepcopy(answer), None
            status, answer = self._create(resource, body or {})
            if status < 300:
                self.seen_keys[(resource, key)] = (status, copy.deepcopy(answer))
            return status, answer, None
        if store is None:
            return 405, {"message": "method not allowed"}, None
        if method == "GET" and not item:
            (param, value), = query.items() if len(query) == 1 else ((None, None),)
            if param is None:
                return 200, self._wrap([copy.deepcopy(r) for r in store.values()]), None
            rows = [copy.deepcopy(r) for r in store.values()
                    if any(p.split(".")[-1] == param and str(_get(r, p)) == value for p in self._paths(resource))]
            return 200, self._wrap(rows), None
        record = store.get(item)
        if record is None:
            return 404, {"message": "not found"}, None
        if method == "GET":
            return 200, self._wrap(copy.deepcopy(record)), None
        if method == "PATCH":
            problem = self._check(resource, body or {}, item)
            if problem:
                return problem
            _merge(record, body or {})
            return 200, self._wrap(copy.deepcopy(record)), None
        return 405, {"message": "method not allowed"}, None

    def _paths(self, resource: str) -> list[str]:
        if resource == "customers":
            return [self.layout["customer_id"], self.layout["customer_phone"]]
        return [self.layout["case_ticket"], self.layout["case_customer"]]

    def _check(self, resource: str, change: dict[str, Any], item: str) -> Optional[tuple[int, Any, None]]:
        for path in self.invalid_fields:
            if _get(change, path) is not None:
                return 422, {"errors": [{"field": path, "message": "invalid value"}]}, None
        if resource != "customers":
            return None
        email = _get(change, self.layout["customer_email"])
        if email is not None and not EMAIL_RE.match(str(email)):
            return 422, {"field": self.layout["customer_email"], "message": "invalid email"}, None
        phone = _get(change, self.layout["customer_phone"])
        if phone is not None and any(
            _get(r, self.layout["customer_phone"]) == phone and key != item for key, r in self.customers.items()
        ):
            return 409, {"field": self.layout["customer_phone"], "message": "mobile already used"}, None
        return None

    def _create(self, resource: str, body: dict[str, Any]) -> tuple[int, Any]:
        if resource == "notes":
            record = {**copy.deepcopy(body), "id": len(self.notes) + 1}
            self.notes.append(record)
            return 201, self._wrap(copy.deepcopy(record))
        ticket = _get(body, self.layout["case_ticket"])
        if not ticket:
            return 422, {"field": self.layout["case_ticket"], "message": "required"}
        if str(ticket) in self.cases:
            return 409, {"field": self.layout["case_ticket"], "message": "duplicate"}
        self.cases[str(ticket)] = copy.deepcopy(body)
        return 201, self._wrap(copy.deepcopy(body))
