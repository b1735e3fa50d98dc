"""A generic REST CRM as the customer directory (in-house systems, 纷享销客-style APIs).

Companies' own CRMs differ mostly in names: what the customer's mobile is
called and how deep it sits in the JSON. So the resource layout is fixed and
the names come from a mapping file (JSON or YAML, ``KEFU_REST_CRM_MAPPING``):

    paths:    {customers: /customers, cases: /cases, notes: /notes}
    envelope: data              # records and lists arrive under this key ("" = bare)
    customer: {id: id, name: name, phone: contact.mobile, ...}   # ours -> their JSON path
    case:     {ticket_number: ticket_no, ...}
    note:     {customer_id: customer_id, ...}
    values:   {tier: {core: VIP}, status: {open: NEW}}             # value translations

Requests (``{customers}`` is ``paths.customers`` and so on):

* ``GET {customers}/{id}`` (404: no such customer),
  ``GET {customers}?<phone>=…`` (a list), ``PATCH {customers}/{id}``;
* ``POST {cases}``, ``GET {cases}?<customer_id>=…``, ``GET {cases}/{ticket}``,
  ``PATCH {cases}/{ticket}``; ``POST {notes}``.

Query parameter names are the last segment of the mapped path. Every POST
carries ``Idempotency-Key`` (a digest of ours), which the CRM must honour by
answering a repeated key with the first result — that is what makes a retry
after a timeout safe. ``Authorization: Bearer <KEFU_REST_CRM_TOKEN>``.
Refusals are 400/422 with ``{"field": <their path>, "message": …}`` (or
``{"errors": [{"field": …}]}``); 409 on a phone means it belongs to someone else.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from .. import directory as d
from .. import validation
from ..errors import CRMUnavailable, InvalidInput, NotFound
from ..masking import guard_logger
from ..views import ComplaintView, CustomerView
from .http import HttpClient, RetryPolicy, json_body

log = guard_logger(__name__)

CUSTOMER_FIELDS = ("id", "name", "phone", "email", "birthday", "address", "city", "tier", "member_level", "created_at")
CASE_FIELDS = (
    "ticket_number", "customer_id", "category", "description", "severity", "status", "channel",
    "order_number", "contact_phone", "sender_id", "created_at", "sla_due_at", "resolved_at",
)
NOTE_FIELDS = ("customer_id", "kind", "summary", "channel", "sender_id")
DEFAULT_PATHS = {"customers": "/customers", "cases": "/cases", "notes": "/notes"}


def get_path(record: Any, path: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; None when any step is missing."""
    value = record
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


def set_path(record: dict[str, Any], path: str, value: Any) -> None:
    steps = path.split(".")
    for step in steps[:-1]:
        record = record.setdefault(step, {})
    record[steps[-1]] = value


@dataclass(frozen=True)
class FieldMapping:
    """Our field names -> the CRM's JSON paths, and value translations."""

    customer: Mapping[str, str]
    case: Mapping[str, str]
    note: Mapping[str, str]
    paths: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PATHS))
    envelope: str = ""
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def identity(cls) -> "FieldMapping":
        return cls(
            customer={f: f for f in CUSTOMER_FIELDS},
            case={f: f for f in CASE_FIELDS},
            note={f: f for f in NOTE_FIELDS},
        )

    @classmethod
    def load(cls, path: Path) -> "FieldMapping":
        """Read a JSON or YAML mapping; unknown names are refused so a typo cannot go unnoticed."""
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return cls.from_dict(data or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FieldMapping":
        base = cls.identity()
        unknown = set(data) - {"paths", "envelope", "customer", "case", "note", "values"}
        if unknown:
            raise ValueError(f"unknown mapping sections: {', '.join(sorted(unknown))}")

        def section(name: str, allowed: tuple[str, ...], default: Mapping[str, str]) -> dict[str, str]:
            given = dict(data.get(name) or {})
            bad = set(given) - set(allowed)
            if bad:
                raise ValueError(f"unknown {name} fields in mapping: {', '.join(sorted(bad))}")
            if not all(isinstance(v, str) and v for v in given.values()):
                raise ValueError(f"{name} mapping values must be non-empty JSON paths")
            return {**default, **given}

        paths = {**DEFAULT_PATHS, **dict(data.get("paths") or {})}
        if set(paths) != set(DEFAULT_PATHS):
            raise ValueError("paths may only name customers, cases and notes")
        values = {k: {str(a): str(b) for a, b in (v or {}).items()} for k, v in (data.get("values") or {}).items()}
        return cls(
            customer=section("customer", CUSTOMER_FIELDS, base.customer),
            case=section("case", CASE_FIELDS, base.case),
            note=section("note", NOTE_FIELDS, base.note),
            paths={k: "/" + v.strip("/") for k, v in paths.items()},
            envelope=str(data.get("envelope") or ""),
            values=values,
        )

    def out(self, kind: str, value: Any) -> Any:
        """Our value as theirs (``values.<kind>``), e.g. tier ``core`` -> ``VIP``."""
        table = self.values.get(kind)
        return table.get(value, value) if table and isinstance(value, str) else value

    def back(self, kind: str, value: Any) -> Any:
        table = self.values.get(kind)
        if not table:
            return value
        reverse = {v: k for k, v in table.items()}
        return reverse.get(str(value), value) if value is not None else None

    def param(self, section: Mapping[str, str], ours: str) -> str:
        return section[ours].split(".")[-1]

    def ours_for(self, their_path: Optional[str]) -> Optional[str]:
        for section in (self.customer, self.case, self.note):
            for ours, theirs in section.items():
                if theirs == their_path or theirs.split(".")[-1] == their_path:
                    return ours
        return None


@dataclass(frozen=True)
class RestSettings:
    base_url: str
    token: str = field(repr=False)
    mapping: FieldMapping = field(default_factory=FieldMapping.identity)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RestSettings":
        base = (env.get("KEFU_REST_CRM_URL") or "").strip().rstrip("/")
        if not base:
            raise ValueError("KEFU_REST_CRM_URL must be set for KEFU_CRM_DIRECTORY=rest")
        token = (env.get("KEFU_REST_CRM_TOKEN") or "").strip()
        if not token:
            raise ValueError("KEFU_REST_CRM_TOKEN must be set for KEFU_CRM_DIRECTORY=rest")
        mapping_file = (env.get("KEFU_REST_CRM_MAPPING") or "").strip()
        mapping = FieldMapping.load(Path(mapping_file)) if mapping_file else FieldMapping.identity()
        return cls(base_url=base, token=token, mapping=mapping)


class RestDirectory:
    """`CustomerDirectory` over a REST CRM described by a `FieldMapping`."""

    name = "rest"

    def __init__(
        self,
        settings: RestSettings,
        *,
        retry: Optional[RetryPolicy] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.map = settings.mapping
        self.http = HttpClient(retry or RetryPolicy(), name="rest", sleep=sleep)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "RestDirectory":
        env = os.environ if env is None else env
        return cls(RestSettings.from_env(env), retry=RetryPolicy.from_env(env))

    def __repr__(self) -> str:
        return f"RestDirectory({self.settings.base_url!r})"

    def close(self) -> None:
        self.http.close()

    # -- transport --------------------------------------------------------

    def _request(self, method: str, resource: str, what: str, *, suffix: str = "",
                 key: Optional[str] = None, **kwargs: Any) -> tuple[int, Any]:
        url = f"{self.settings.base_url}{self.map.paths[resource]}{suffix}"
        headers = {"Authorization": f"Bearer {self.settings.token}", "Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key

        def step() -> tuple[int, Any]:
            response = self.http.send_once(method, url, headers=headers, **kwargs)
            status = response.status_code
            if status == 404:
                return 404, None
            body = json_body(response)
            if 200 <= status < 300:
                if self.map.envelope and isinstance(body, Mapping):
                    body = body.get(self.map.envelope)
                return status, body
            if status in (400, 409, 422):
                raise self._refusal(status, body)
            log.warning("REST CRM %s %s refused: HTTP %s", method, self.map.paths[resource], status)
            raise CRMUnavailable(f"REST CRM refused the request (HTTP {status})")

        return self.http.retrying(step, what)

    def _refusal(self, status: int, body: Any) -> InvalidInput:
        their = None
        if isinstance(body, Mapping):
            their = body.get("field")
            errors = body.get("errors")
            if their is None and isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
                their = errors[0].get("field")
        ours = self.map.ours_for(their)
        if status == 409 and ours in ("phone", "contact_phone"):
            return InvalidInput(d.MSG_PHONE_TAKEN)
        log.info("REST CRM refused a value (HTTP %s) on %s", status, ours or their)
        return d.refused(ours)

    # -- customers --------------------------------------------------------

    def _customer_view(self, record: Any) -> Optional[CustomerView]:
        m = self.map.customer
        raw_id = get_path(record, m["id"])
        try:
            customer_id = int(str(raw_id))
        except (TypeError, ValueError):
            return None
        if not 0 < customer_id < 2**63:
            return None
        return d.remote_customer_view(
            customer_id,
            name=get_path(record, m["name"]),
            phone=get_path(record, m["phone"]),
            email=get_path(record, m["email"]),
            address=get_path(record, m["address"]),
            city=get_path(record, m["city"]),
            birthday=get_path(record, m["birthday"]),
            tier=self.map.back("tier", get_path(record, m["tier"])),
            member_level=get_path(record, m["member_level"]),
            created_at=get_path(record, m["created_at"]),
        )

    def get_customer(self, customer_id: int) -> CustomerView:
        cid = d.customer_number(customer_id)
        status, body = self._request("GET", "customers", "customer read", suffix=f"/{cid}")
        view = self._customer_view(body) if status != 404 else None
        if view is None:
            raise NotFound(f"customer {cid}")
        return view

    def find_customer_by_phone(self, phone: str) -> Optional[CustomerView]:
        number = validation.phone(phone)
        param = self.map.param(self.map.customer, "phone")
        status, body = self._request("GET", "customers", "customer search", params={param: number})
        for record in body if isinstance(body, list) else []:
            view = self._customer_view(record)
            if view is not None and get_path(record, self.map.customer["phone"]) == number:
                return view
        return None

    def update_profile(self, customer_id: int, field: str, value: Any, idempotency_key: str) -> CustomerView:
        """PATCH is idempotent by nature (same value again); the digest still goes along."""
        cid = d.customer_number(customer_id)
        token = d.key_token(idempotency_key)
        name, new_value = d.profile_value(field, value, d.china_today())
        if name == "phone":
            owner = self.find_customer_by_phone(new_value)
            if owner is not None and owner.id != cid:
                raise InvalidInput(d.MSG_PHONE_TAKEN)
        change: dict[str, Any] = {}
        set_path(change, self.map.customer[name], new_value.isoformat() if name == "birthday" else new_value)
        status, body = self._request("PATCH", "customers", "profile update", suffix=f"/{cid}", key=token,
                                     json=change)
        if status == 404:
            raise NotFound(f"customer {cid}")
        log.info("rest customer %s updated %s", cid, name)
        view = self._customer_view(body) if body else None
        return view if view is not None else self.get_customer(cid)

    # -- cases ------------------------------------------------------------

    def _case_view(self, record: Any) -> Optional[ComplaintView]:
        m = self.map.case
        ticket = get_path(record, m["ticket_number"])
        if not ticket:
            return None
        return d.remote_complaint_view(
            ticket_number=str(ticket),
            category=self.map.back("category", get_path(record, m["category"])),
            description=get_path(record, m["description"]) or "",
            severity=self.map.back("severity", get_path(record, m["severity"])),
            status=self.map.back("status", get_path(record, m["status"])),
            channel=get_path(record, m["channel"]) or "",
            order_number=get_path(record, m["order_number"]),
            contact_phone=get_path(record, m["contact_phone"]),
            created_at=get_path(record, m["created_at"]),
            sla_due_at=get_path(record, m["sla_due_at"]),
            resolved_at=get_path(record, m["resolved_at"]),
        )

    def create_case(
        self,
        customer_id: Optional[int],
        complaint: ComplaintView,
        idempotency_key: str,
        *,
        sender_id: str,
        contact_phone: Optional[str] = None,
    ) -> ComplaintView:
        cid = None if customer_id is None else d.customer_number(customer_id)
        case = d.check_complaint(complaint)
        sender = validation.label(sender_id, "sender_id")
        callback = validation.phone(contact_phone) if contact_phone else None
        ours = {
            "ticket_number": case.ticket_number,
            "customer_id": cid,
            "category": self.map.out("category", case.category),
            "description": case.description,
            "severity": self.map.out("severity", case.severity),
            "status": self.map.out("status", case.status),
            "channel": case.channel,
            "order_number": case.order_number,
            "contact_phone": callback,
            "sender_id": sender,
            "created_at": d.iso(case.created_at),
            "sla_due_at": d.iso(case.sla_due_at),
            "resolved_at": d.iso(case.resolved_at),
        }
        record: dict[str, Any] = {}
        for name, value in ours.items():
            set_path(record, self.map.case[name], value)
        _, body = self._request("POST", "cases", "case create", key=d.key_token(idempotency_key), json=record)
        log.info("rest case created for ticket %s", case.ticket_number)
        return self._case_view(body) or case

    def update_case_status(self, ticket_number: str, status: str, idempotency_key: str) -> ComplaintView:
        number = validation.ticket_number(ticket_number)
        wanted = d.case_status(status)
        token = d.key_token(idempotency_key)
        found, body = self._request("GET", "cases", "case read", suffix=f"/{number}")
        current = self._case_view(body) if found != 404 else None
        if current is None:
            raise InvalidInput(d.MSG_CASE_NOT_FOUND)
        after = d.with_status(current, wanted, datetime.now(timezone.utc))
        change: dict[str, Any] = {}
        set_path(change, self.map.case["status"], self.map.out("status", wanted))
        set_path(change, self.map.case["resolved_at"], d.iso(after.resolved_at))
        status_code, body = self._request("PATCH", "cases", "case update", suffix=f"/{number}", key=token,
                                          json=change)
        if status_code == 404:
            raise InvalidInput(d.MSG_CASE_NOT_FOUND)
        return self._case_view(body) or after

    def cases_for_customer(self, customer_id: int, open_only: bool = False) -> list[ComplaintView]:
        cid = d.customer_number(customer_id)
        param = self.map.param(self.map.case, "customer_id")
        _, body = self._request("GET", "cases", "case list", params={param: cid})
        views = [v for v in (self._case_view(r) for r in (body if isinstance(body, list) else [])) if v]
        if open_only:
            views = [v for v in views if v.status not in d.CLOSED_CASE_STATUSES]
        return sorted(views, key=lambda v: (v.created_at, v.ticket_number), reverse=True)

    # -- notes ------------------------------------------------------------

    def add_note(
        self, customer_id: int, kind: str, summary: str, idempotency_key: str, *, channel: str, sender_id: str
    ) -> None:
        cid = d.customer_number(customer_id)
        kind, text, channel, sender = d.note_fields(kind, summary, channel, sender_id)
        self.get_customer(cid)  # NotFound, like the other directories, rather than an orphan note
        record: dict[str, Any] = {}
        for name, value in {"customer_id": cid, "kind": kind, "summary": text, "channel": channel,
                            "sender_id": sender}.items():
            set_path(record, self.map.note[name], value)
        self._request("POST", "notes", "note create", key=d.key_token(idempotency_key), json=record)


__all__ = ["FieldMapping", "RestDirectory", "RestSettings", "get_path", "set_path"]
