"""Zoho CRM (API v2) as the customer directory, over plain `requests`.

Records (field API names are Zoho's; ``Kefu_*`` are custom fields the
company adds once, listed in docs/crm-backends.md):

* customers are Contacts, joined to the shop by ``Kefu_Customer_Id``
  (the shop's customer number); name in ``Last_Name`` (Chinese names are
  not split into given and family name), ``Mobile``, ``Email``,
  ``Date_of_Birth``, ``Mailing_Street`` / ``Mailing_City``, tier in
  ``Kefu_Tier``;
* complaints are Cases (``Subject``, ``Description``, ``Status``,
  ``Priority``, ``Case_Origin``, ``Contact_Name`` lookup) carrying our
  ticket number, category, severity, SLA and status in ``Kefu_*`` fields;
* interaction notes are Notes on the Contact.

Authentication is the OAuth2 refresh-token flow: an access token is fetched
with the long-lived refresh token, kept in memory (and, if configured, in a
mode-600 file so that several worker processes do not each refresh), renewed
a minute before it expires, and renewed once more when Zoho answers 401
INVALID_TOKEN anyway (revoked, clock skew).

Creates are idempotent across timeouts: the case or note carries a digest of
our idempotency key (`directory.key_token`) and every attempt first searches
for it, so a create whose answer was lost is found, not repeated.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import requests

from .. import directory as d
from .. import validation
from ..errors import CRMUnavailable, InvalidInput, NotFound
from ..masking import guard_logger
from ..views import COMPLAINT_CATEGORY_LABELS, ComplaintView, CustomerView
from .http import HttpClient, RetryPolicy, Transient, json_body

log = guard_logger(__name__)

#: Renew the access token this long before Zoho says it expires.
TOKEN_MARGIN_S = 60.0
PER_PAGE = 200

STATUS_TO_ZOHO = {"open": "New", "pending": "On Hold", "resolved": "Closed", "closed": "Closed"}
ZOHO_TO_STATUS = {"New": "open", "On Hold": "pending", "Escalated": "pending", "Closed": "resolved"}
PRIORITY_TO_ZOHO = {"high": "High", "medium": "Medium", "low": "Low"}
#: Our profile field -> the Contact field that holds it.
PROFILE_TO_ZOHO = {
    "name": "Last_Name",
    "phone": "Mobile",
    "email": "Email",
    "birthday": "Date_of_Birth",
    "address": "Mailing_Street",
}
_ZOHO_TO_OURS = {
    **{v: k for k, v in PROFILE_TO_ZOHO.items()},
    "First_Name": "name",
    "Full_Name": "name",
    "Phone": "phone",
    "Description": "description",
    "Note_Content": "summary",
}
_CRITERIA_SPECIAL = re.compile(r"([(),\\])")


@dataclass(frozen=True)
class ZohoSettings:
    accounts_url: str
    api_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_file: Optional[Path] = None
    customer_id_field: str = "Kefu_Customer_Id"
    tier_field: str = "Kefu_Tier"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ZohoSettings":
        def required(name: str) -> str:
            value = (env.get(name) or "").strip()
            if not value:
                raise ValueError(f"{name} must be set for KEFU_CRM_DIRECTORY=zoho")
            return value

        token_file = (env.get("KEFU_ZOHO_TOKEN_FILE") or "").strip()
        return cls(
            accounts_url=(env.get("KEFU_ZOHO_ACCOUNTS_URL") or "https://accounts.zoho.com.cn").rstrip("/"),
            api_url=(env.get("KEFU_ZOHO_API_URL") or "https://www.zohoapis.com.cn").rstrip("/"),
            client_id=required("KEFU_ZOHO_CLIENT_ID"),
            client_secret=required("KEFU_ZOHO_CLIENT_SECRET"),
            refresh_token=required("KEFU_ZOHO_REFRESH_TOKEN"),
            token_file=Path(token_file) if token_file else None,
            customer_id_field=(env.get("KEFU_ZOHO_CUSTOMER_ID_FIELD") or "Kefu_Customer_Id").strip(),
            tier_field=(env.get("KEFU_ZOHO_TIER_FIELD") or "Kefu_Tier").strip(),
        )


class ZohoTokens:
    """The access token: cached, renewed before expiry, shared through an optional file."""

    def __init__(self, settings: ZohoSettings, http: HttpClient, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Optional[str] = None
        self._expires_at = 0.0
        self.refreshes = 0  # how many times Zoho was asked; for operators and tests

    def current(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - TOKEN_MARGIN_S:
                if not self._load_file():
                    self._refresh()
            assert self._token is not None
            return self._token

    def renew(self, rejected: str) -> str:
        """Zoho refused ``rejected``; fetch a new token unless another thread already did."""
        with self._lock:
            if self._token == rejected or self._token is None:
                self._refresh()
            assert self._token is not None
            return self._token

    def _load_file(self) -> bool:
        path = self._settings.token_file
        if path is None:
            return False
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            token, expires_at = str(stored["access_token"]), float(stored["expires_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if token == self._token or self._clock() >= expires_at - TOKEN_MARGIN_S:
            return False
        self._token, self._expires_at = token, expires_at
        return True

    def _save_file(self) -> None:
        path = self._settings.token_file
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".zoho-token-")
            with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp creates it mode 600
                json.dump({"access_token": self._token, "expires_at": self._expires_at}, out)
            os.replace(tmp, path)
        except OSError as exc:  # the file is an optimisation; memory still works
            log.warning("could not store the Zoho access token file: %s", type(exc).__name__)

    def _refresh(self) -> None:
        s = self._settings
        form = {
            "grant_type": "refresh_token",
            "client_id": s.client_id,
            "client_secret": s.client_secret,
            "refresh_token": s.refresh_token,
        }
        response = self._http.send("POST", f"{s.accounts_url}/oauth/v2/token", "token refresh", data=form)
        try:
            body = json_body(response) or {}
        except Transient:
            body = {}
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if response.status_code != 200 or not token or not isinstance(lifetime, (int, float)):
            # Zoho answers a bad client or refresh token with 200 {"error": "invalid_code"}:
            # retrying cannot help, so this is a configuration problem to report.
            log.error("Zoho token refresh refused: %s", body.get("error") or f"HTTP {response.status_code}")
            raise CRMUnavailable("Zoho CRM refused the OAuth refresh token")
        self._token = str(token)
        self._expires_at = self._clock() + float(lifetime)
        self.refreshes += 1
        self._save_file()
        log.info("Zoho access token renewed (valid %ss)", int(lifetime))


def _criteria(api_name: str, value: Any) -> str:
    escaped = _CRITERIA_SPECIAL.sub(lambda m: "\\" + m.group(1), str(value))
    return f"({api_name}:equals:{escaped})"


def _zoho_time(moment: datetime) -> str:
    """Zoho's DateTime format: ISO-8601 to the second with an offset."""
    return moment.replace(microsecond=0).isoformat()


class ZohoDirectory:
    """`CustomerDirectory` over Zoho CRM's REST API v2."""

    name = "zoho"

    def __init__(
        self,
        settings: ZohoSettings,
        *,
        retry: Optional[RetryPolicy] = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.http = HttpClient(retry or RetryPolicy(), name="zoho", sleep=sleep)
        self.tokens = ZohoTokens(settings, self.http, clock)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "ZohoDirectory":
        env = os.environ if env is None else env
        return cls(ZohoSettings.from_env(env), retry=RetryPolicy.from_env(env))

    def __repr__(self) -> str:
        return f"ZohoDirectory({self.settings.api_url!r})"

    def close(self) -> None:
        self.http.close()

    # -- transport --------------------------------------------------------

    def _once(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One authenticated request (plus one renewal on INVALID_TOKEN): (status, JSON body).

        Zoho's error vocabulary becomes ours here: rate limits and server
        errors are `Transient`, INVALID_DATA is `InvalidInput`, anything else
        that is not a success is `CRMUnavailable` (a configuration problem
        retrying will not fix).
        """
        url = f"{self.settings.api_url}{path}"
        token = self.tokens.current()
        for renewed in (False, True):
            headers = {"Authorization": f"Zoho-oauthtoken {token}"}
            response = self.http.send_once(method, url, headers=headers, **kwargs)
            body = json_body(response)
            code = body.get("code") if isinstance(body, dict) else None
            if response.status_code == 401 and code == "INVALID_TOKEN" and not renewed:
                token = self.tokens.renew(token)
                continue
            break
        if code == "TOO_MANY_REQUESTS":
            raise Transient("TOO_MANY_REQUESTS")
        if response.status_code in (200, 201, 202, 204):
            return response.status_code, body
        if code in ("INVALID_DATA", "DUPLICATE_DATA", "MANDATORY_NOT_FOUND") or _record_errors(body):
            raise _record_error(body)
        log.warning("Zoho %s %s refused: HTTP %s %s", method, path.split("?")[0], response.status_code, code)
        raise CRMUnavailable(f"Zoho CRM refused the request (HTTP {response.status_code} {code or ''})".strip())

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        return self.http.retrying(lambda: self._once(method, path, **kwargs), what)

    def _search(self, module: str, api_name: str, value: Any) -> Iterator[dict[str, Any]]:
        """Every record whose ``api_name`` equals ``value``, all pages (one attempt per page)."""
        page = 1
        while True:
            status, body = self._once(
                "GET",
                f"/crm/v2/{module}/search",
                params={"criteria": _criteria(api_name, value), "page": page, "per_page": PER_PAGE},
            )
            if status == 204 or not body:
                return
            yield from body.get("data") or []
            if not (body.get("info") or {}).get("more_records"):
                return
            page += 1

    def _find(self, module: str, api_name: str, value: Any, what: str) -> list[dict[str, Any]]:
        return self.http.retrying(lambda: list(self._search(module, api_name, value)), what)

    def _record(self, module: str, record_id: str, what: str) -> Optional[dict[str, Any]]:
        status, body = self._call("GET", f"/crm/v2/{module}/{record_id}", what)
        rows = (body or {}).get("data") or [] if status != 204 else []
        return rows[0] if rows else None

    def _written_id(self, body: Any) -> str:
        rows = (body or {}).get("data") or []
        row = rows[0] if rows else {}
        if row.get("status") != "success":
            raise _record_error(body)
        return str(row["details"]["id"])

    # -- contacts ---------------------------------------------------------

    def _contact(self, customer_id: int) -> Optional[dict[str, Any]]:
        rows = self._find("Contacts", self.settings.customer_id_field, customer_id, "contact lookup")
        return rows[0] if rows else None

    def _customer_view(self, record: Mapping[str, Any]) -> Optional[CustomerView]:
        raw_id = record.get(self.settings.customer_id_field)
        try:
            customer_id = int(str(raw_id).split(".")[0])
        except (TypeError, ValueError):
            return None  # a Contact Kefu has never linked to a shop customer
        last, first = record.get("Last_Name") or "", record.get("First_Name") or ""
        name = f"{last}{first}" if first and _is_cjk(last + first) else (record.get("Full_Name") or f"{first} {last}")
        return d.remote_customer_view(
            customer_id,
            name=name.strip(),
            phone=record.get("Mobile") or record.get("Phone"),
            email=record.get("Email"),
            address=record.get("Mailing_Street"),
            city=record.get("Mailing_City"),
            birthday=record.get("Date_of_Birth"),
            tier=record.get(self.settings.tier_field),
            created_at=record.get("Created_Time"),
        )

    def get_customer(self, customer_id: int) -> CustomerView:
        cid = d.customer_number(customer_id)
        record = self._contact(cid)
        view = self._customer_view(record) if record else None
        if view is None:
            raise NotFound(f"customer {cid}")
        return view

    def find_customer_by_phone(self, phone: str) -> Optional[CustomerView]:
        number = validation.phone(phone)
        for record in self._find("Contacts", "Mobile", number, "contact search"):
            view = self._customer_view(record)
            if view is not None:
                return view
        return None

    def update_profile(self, customer_id: int, field: str, value: Any, idempotency_key: str) -> CustomerView:
        """Setting a field to a value is idempotent by nature; the key is only validated."""
        cid = d.customer_number(customer_id)
        d.key_token(idempotency_key)
        name, new_value = d.profile_value(field, value, d.china_today())
        record = self._contact(cid)
        if record is None:
            raise NotFound(f"customer {cid}")
        if name == "phone":
            owner = self.find_customer_by_phone(new_value)
            if owner is not None and owner.id != cid:
                raise InvalidInput(d.MSG_PHONE_TAKEN)
        change: dict[str, Any] = {"id": record["id"], PROFILE_TO_ZOHO[name]: str(new_value)}
        if name == "name":
            change["First_Name"] = None  # the whole Chinese name lives in Last_Name
        _, body = self._call("PUT", "/crm/v2/Contacts", "profile update", json={"data": [change]})
        self._written_id(body)
        log.info("zoho contact of customer %s updated %s", cid, name)
        updated = self._record("Contacts", str(record["id"]), "contact read")
        view = self._customer_view(updated) if updated else None
        if view is None:
            raise NotFound(f"customer {cid}")
        return view

    # -- cases ------------------------------------------------------------

    def _case_view(self, record: Mapping[str, Any]) -> Optional[ComplaintView]:
        ticket = record.get("Kefu_Ticket")
        if not ticket:
            return None  # a case staff opened in Zoho, not one of ours
        ours = record.get("Kefu_Status")
        zoho = record.get("Status")
        status = ours if ours and STATUS_TO_ZOHO.get(ours) == zoho else ZOHO_TO_STATUS.get(zoho or "", ours or "open")
        return d.remote_complaint_view(
            ticket_number=str(ticket),
            category=record.get("Kefu_Category") or "other",
            description=record.get("Description") or "",
            severity=record.get("Kefu_Severity") or "medium",
            status=status,
            channel=record.get("Kefu_Channel") or "",
            order_number=record.get("Kefu_Order_Number"),
            contact_phone=record.get("Phone"),
            created_at=record.get("Kefu_Created_At") or record.get("Created_Time"),
            sla_due_at=record.get("Kefu_SLA_Due"),
            resolved_at=record.get("Kefu_Resolved_At"),
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
        validation.label(sender_id, "sender_id")
        callback = validation.phone(contact_phone) if contact_phone else None
        token = d.key_token(idempotency_key)
        record: dict[str, Any] = {
            "Subject": f"[{case.ticket_number}] {COMPLAINT_CATEGORY_LABELS[case.category]}投诉",
            "Description": case.description,
            "Status": STATUS_TO_ZOHO[case.status],
            "Priority": PRIORITY_TO_ZOHO[case.severity],
            "Case_Origin": "Web",
            "Kefu_Key": token,
            "Kefu_Ticket": case.ticket_number,
            "Kefu_Customer_Id": cid,
            "Kefu_Category": case.category,
            "Kefu_Severity": case.severity,
            "Kefu_Status": case.status,
            "Kefu_Channel": case.channel,
            "Kefu_Order_Number": case.order_number,
            "Kefu_Created_At": _zoho_time(case.created_at),
            "Kefu_SLA_Due": _zoho_time(case.sla_due_at),
            "Kefu_Resolved_At": _zoho_time(case.resolved_at) if case.resolved_at else None,
        }
        if callback:
            record["Phone"] = callback

        def step() -> ComplaintView:
            for found in self._search("Cases", "Kefu_Key", token):
                view = self._case_view(found)
                if view is not None:
                    return view  # stored by an earlier attempt whose answer we lost
            if cid is not None and "Contact_Name" not in record:
                contact = next(self._search("Contacts", self.settings.customer_id_field, cid), None)
                if contact is not None:
                    record["Contact_Name"] = {"id": contact["id"]}
            _, body = self._once("POST", "/crm/v2/Cases", json={"data": [record]})
            self._written_id(body)
            log.info("zoho case created for ticket %s", case.ticket_number)
            return case

        return self.http.retrying(step, "case create")

    def _case_record(self, ticket_number: str) -> dict[str, Any]:
        rows = self._find("Cases", "Kefu_Ticket", ticket_number, "case lookup")
        if not rows:
            raise InvalidInput(d.MSG_CASE_NOT_FOUND)
        return rows[0]

    def update_case_status(self, ticket_number: str, status: str, idempotency_key: str) -> ComplaintView:
        number = validation.ticket_number(ticket_number)
        wanted = d.case_status(status)
        d.key_token(idempotency_key)
        record = self._case_record(number)
        current = self._case_view(record)
        assert current is not None
        now = datetime.now(timezone.utc)
        after = d.with_status(current, wanted, now)
        change = {
            "id": record["id"],
            "Status": STATUS_TO_ZOHO[wanted],
            "Kefu_Status": wanted,
            "Kefu_Resolved_At": _zoho_time(after.resolved_at) if after.resolved_at else None,
        }
        _, body = self._call("PUT", "/crm/v2/Cases", "case update", json={"data": [change]})
        self._written_id(body)
        return after

    def cases_for_customer(self, customer_id: int, open_only: bool = False) -> list[ComplaintView]:
        cid = d.customer_number(customer_id)
        views = [
            v for v in (self._case_view(r) for r in self._find("Cases", "Kefu_Customer_Id", cid, "case list"))
            if v is not None
        ]
        if open_only:
            views = [v for v in views if v.status not in d.CLOSED_CASE_STATUSES]
        return sorted(views, key=lambda v: (v.created_at, v.ticket_number), reverse=True)

    # -- notes ------------------------------------------------------------

    def _notes(self, contact_id: str) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            status, body = self._once(
                "GET", f"/crm/v2/Contacts/{contact_id}/Notes", params={"page": page, "per_page": PER_PAGE}
            )
            if status == 204 or not body:
                return
            yield from body.get("data") or []
            if not (body.get("info") or {}).get("more_records"):
                return
            page += 1

    def add_note(
        self, customer_id: int, kind: str, summary: str, idempotency_key: str, *, channel: str, sender_id: str
    ) -> None:
        cid = d.customer_number(customer_id)
        kind, text, channel, _sender = d.note_fields(kind, summary, channel, sender_id)
        marker = f"[kefu:{d.key_token(idempotency_key)}]"

        def step() -> None:
            contact = next(self._search("Contacts", self.settings.customer_id_field, cid), None)
            if contact is None:
                raise NotFound(f"customer {cid}")
            if any(marker in (n.get("Note_Content") or "") for n in self._notes(str(contact["id"]))):
                return
            note = {"Note_Title": f"客服机器人记录（{kind}，{channel}）", "Note_Content": f"{text}\n{marker}"}
            _, body = self._once("POST", f"/crm/v2/Contacts/{contact['id']}/Notes", json={"data": [note]})
            self._written_id(body)

        self.http.retrying(step, "note create")


def _is_cjk(text: str) -> bool:
    return bool(text) and all("\u4e00" <= ch <= "\u9fff" or ch == "·" for ch in text)


def _record_errors(body: Any) -> list[dict[str, Any]]:
    rows = body.get("data") if isinstance(body, dict) else None
    return [r for r in rows or [] if isinstance(r, dict) and r.get("status") == "error"]


def _record_error(body: Any) -> Exception:
    """Zoho's per-record or top-level error as ours: the field it names, in Chinese words."""
    errors = _record_errors(body)
    error = errors[0] if errors else (body if isinstance(body, dict) else {})
    code = error.get("code")
    details = error.get("details") or {}
    api_name = details.get("api_name") if isinstance(details, dict) else None
    ours = _ZOHO_TO_OURS.get(api_name or "")
    if code == "DUPLICATE_DATA" and api_name == "Kefu_Key":
        # The company made Kefu_Key unique: our record is there; the next attempt finds it.
        return Transient("DUPLICATE_DATA on Kefu_Key")
    if code == "DUPLICATE_DATA" and ours == "phone":
        return InvalidInput(d.MSG_PHONE_TAKEN)
    if code in ("INVALID_DATA", "DUPLICATE_DATA", "MANDATORY_NOT_FOUND") and (ours or code == "INVALID_DATA"):
        log.info("Zoho refused a record: %s on %s", code, api_name)
        return d.refused(ours)
    log.warning("Zoho refused a record: %s on %s", code, api_name)
    return CRMUnavailable(f"Zoho CRM refused the record ({code})")


__all__ = ["ZohoDirectory", "ZohoSettings", "ZohoTokens"]
