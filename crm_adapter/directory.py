"""The customer directory: the part of the CRM a company may keep elsewhere.

Orders, products, returns and the loyalty programme stay in the shop's own
SQL database. Customer profiles, complaint cases and interaction notes are
what a company's existing CRM (Zoho, an in-house REST system) already holds
and its staff already work in, so Kefu reads and writes those records
through `CustomerDirectory` and does not copy them into a second system of
record.

The contract speaks in the existing views (`CustomerView`, `ComplaintView`)
and raises only `crm_adapter.errors`, exactly like `CRM`:

* ``customer_id`` is the shop's customer number (the id orders refer to).
  Remote CRMs keep it in a field of their own record (Zoho: a custom field),
  which is how the two systems stay joined.
* Business decisions are Kefu's, not the directory's: a complaint arrives
  at `create_case` with its ticket number, severity and SLA already set
  (`CRM.create_complaint` decides them), and the directory stores it.
* Every write takes an idempotency key; repeating it never writes twice.
* Fields the shop owns (points, level, spend, lifecycle stage) are not the
  directory's to know; remote directories report neutral values for them.

`directory_from_env` picks the implementation from ``KEFU_CRM_DIRECTORY``
(see docs/crm-backends.md).
"""
from __future__ import annotations

import hashlib
import os
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import policy, validation
from .errors import InvalidInput
from .masking import mask_address, mask_email, mask_phone
from .models import COMPLAINT_CATEGORIES, COMPLAINT_STATUSES, SEVERITIES, TIERS, Complaint, Customer, Interaction
from .views import (
    CHINA_TZ,
    COMPLAINT_CATEGORY_LABELS,
    COMPLAINT_STATUS_LABELS,
    SEVERITY_LABELS,
    ComplaintView,
    CustomerView,
)

if TYPE_CHECKING:  # pragma: no cover
    from .service import CRM

ENV_VAR = "KEFU_CRM_DIRECTORY"
BACKENDS = ("sql", "zoho", "rest")
PROFILE_FIELDS = ("phone", "birthday", "email", "address", "name")
CLOSED_CASE_STATUSES = ("resolved", "closed")

MSG_PROFILE_FIELD = "目前可以修改的是手机号、生日、邮箱、地址和姓名，请问您要改哪一项？"
MSG_PHONE_TAKEN = "这个手机号暂时无法绑定到您的账户，如有疑问请联系人工客服。"
MSG_CASE_STATUS = "系统参数不正确（status），请稍后再试。"
MSG_CASE_NOT_FOUND = "没有查到这个投诉单号，请核对一下。"
MSG_NOTE = "记录内容不能为空，请稍后再试。"
MSG_REMOTE_REFUSED = "客户系统未能保存这条信息（{field}格式不被接受），请核对后再试。"

_FIELD_WORDS = {
    "phone": "手机号", "email": "邮箱", "birthday": "生日", "address": "地址", "name": "姓名",
    "description": "问题描述", "summary": "记录内容",
}
_NOTE_MAX = 500


@runtime_checkable
class CustomerDirectory(Protocol):
    """Customer profiles, complaint cases and notes, wherever the company keeps them."""

    name: str

    def get_customer(self, customer_id: int) -> CustomerView:
        """The customer; `NotFound` when no record carries this customer number."""

    def find_customer_by_phone(self, phone: str) -> Optional[CustomerView]:
        """The customer whose mobile is ``phone`` (validated), or None."""

    def update_profile(self, customer_id: int, field: str, value: Any, idempotency_key: str) -> CustomerView:
        """Change one of `PROFILE_FIELDS` after validating it; a phone another customer has is refused."""

    def create_case(
        self,
        customer_id: Optional[int],
        complaint: ComplaintView,
        idempotency_key: str,
        *,
        sender_id: str,
        contact_phone: Optional[str] = None,
    ) -> ComplaintView:
        """Store a complaint Kefu has already numbered and classified; returns it as stored."""

    def update_case_status(self, ticket_number: str, status: str, idempotency_key: str) -> ComplaintView:
        """Move a case to one of the complaint statuses; `InvalidInput` if the ticket is unknown."""

    def cases_for_customer(self, customer_id: int, open_only: bool = False) -> list[ComplaintView]:
        """The customer's cases, newest first."""

    def add_note(
        self, customer_id: int, kind: str, summary: str, idempotency_key: str, *, channel: str, sender_id: str
    ) -> None:
        """One line of contact history on the customer's record."""


# -- helpers every implementation uses, so that they refuse the same input ----


def key_token(idempotency_key: Any) -> str:
    """What remote records carry instead of our raw key: fixed length, no sender id in it,
    and nothing a search syntax could trip over (Zoho criteria escape ``(),``)."""
    key = validation.label(idempotency_key, "idempotency_key", 255)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def customer_number(value: Any) -> int:
    """Customer numbers arrive from Rasa slots as int, float or text (see service)."""
    from .service import _customer_id  # one parser for both entry points

    return _customer_id(value)


def china_today() -> date:
    """Today's date in China: what a birthday is checked against."""
    return policy.china_date(policy.utc_naive(datetime.now(timezone.utc)))


def profile_value(field: Any, value: Any, today: date) -> tuple[str, Any]:
    """(field, canonical value) or `InvalidInput`, with the same rules as `CRM.update_profile`."""
    name = validation.choice(field, PROFILE_FIELDS, MSG_PROFILE_FIELD)
    if name == "birthday":
        return name, validation.birthday(value, today)
    checks = {
        "phone": validation.phone,
        "email": validation.email,
        "address": validation.address,
        "name": validation.name,
    }
    return name, checks[name](value)


def case_status(value: Any) -> str:
    return validation.choice(value, COMPLAINT_STATUSES, MSG_CASE_STATUS)


def note_fields(kind: Any, summary: Any, channel: Any, sender_id: Any) -> tuple[str, str, str, str]:
    from .masking import mask_text

    text = mask_text(validation.prose(summary))[:_NOTE_MAX]
    if not text:
        raise InvalidInput(MSG_NOTE)
    return (
        validation.label(kind, "kind", 32),
        text,
        validation.label(channel, "channel", 32),
        validation.label(sender_id, "sender_id"),
    )


def check_complaint(complaint: Any) -> ComplaintView:
    """A case to store must be a complete `ComplaintView` in our vocabulary."""
    if not isinstance(complaint, ComplaintView):
        raise InvalidInput("系统参数不完整（complaint），请稍后再试。")
    validation.ticket_number(complaint.ticket_number)
    if (
        complaint.category not in COMPLAINT_CATEGORIES
        or complaint.severity not in SEVERITIES
        or complaint.status not in COMPLAINT_STATUSES
    ):
        raise InvalidInput("系统参数不正确（complaint），请稍后再试。")
    return complaint


def refused(field: Optional[str]) -> InvalidInput:
    """The remote CRM rejected a value (Zoho INVALID_DATA, HTTP 422 …)."""
    word = _FIELD_WORDS.get(field or "", "填写内容")
    return InvalidInput(MSG_REMOTE_REFUSED.format(field=word))


def parse_time(value: Any) -> Optional[datetime]:
    """A remote ISO-8601 time as an aware China-time datetime (naive is taken as UTC)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(CHINA_TZ)


def parse_date(value: Any) -> Optional[date]:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def iso(moment: Optional[datetime]) -> Optional[str]:
    return moment.astimezone(timezone.utc).isoformat() if moment is not None else None


def remote_customer_view(
    customer_id: int,
    *,
    name: Optional[str],
    phone: Optional[str],
    email: Optional[str],
    address: Optional[str],
    city: Optional[str],
    birthday: Any,
    tier: Optional[str],
    created_at: Any,
    member_level: Optional[str] = None,
) -> CustomerView:
    """A `CustomerView` from a remote record; shop-owned numbers are neutral (see module doc)."""
    return CustomerView(
        id=customer_id,
        name=(name or "").strip() or "客户",
        masked_phone=mask_phone(phone),
        masked_email=mask_email(email),
        masked_address=mask_address(address),
        city=city or None,
        gender=None,
        birthday=parse_date(birthday),
        tier=tier if tier in TIERS else "low",
        member_level=member_level or "普通会员",
        points=0,
        lifecycle_stage="potential",
        total_spent=0.0,
        timezone="Asia/Shanghai",
        created_at=parse_time(created_at) or datetime(1970, 1, 1, tzinfo=CHINA_TZ),
    )


def remote_complaint_view(
    *,
    ticket_number: str,
    category: str,
    description: str,
    severity: str,
    status: str,
    channel: str,
    order_number: Optional[str],
    contact_phone: Optional[str],
    created_at: Any,
    sla_due_at: Any,
    resolved_at: Any,
) -> ComplaintView:
    category = category if category in COMPLAINT_CATEGORIES else "other"
    severity = severity if severity in SEVERITIES else "medium"
    status = status if status in COMPLAINT_STATUSES else "open"
    created = parse_time(created_at) or datetime(1970, 1, 1, tzinfo=CHINA_TZ)
    return ComplaintView(
        ticket_number=ticket_number,
        category=category,
        category_label=COMPLAINT_CATEGORY_LABELS[category],
        description=description or "",
        severity=severity,
        severity_label=SEVERITY_LABELS[severity],
        status=status,
        status_label=COMPLAINT_STATUS_LABELS[status],
        channel=channel or "",
        order_number=order_number or None,
        masked_contact_phone=mask_phone(contact_phone),
        created_at=created,
        sla_due_at=parse_time(sla_due_at) or created,
        resolved_at=parse_time(resolved_at),
    )


def with_status(complaint: ComplaintView, status: str, now: datetime) -> ComplaintView:
    """The case after a status change: resolved_at is set on closing and cleared on reopening."""
    from dataclasses import replace

    resolved = complaint.resolved_at or now if status in CLOSED_CASE_STATUSES else None
    return replace(
        complaint, status=status, status_label=COMPLAINT_STATUS_LABELS[status], resolved_at=resolved
    )


# -- the SQL directory: the shop's own tables ---------------------------------


class SqlDirectory:
    """The directory over the CRM's own tables (the default, and what Kefu did before).

    Reads and profile updates are `CRM`'s own methods; the three record writes
    CRM has no keyed method for (storing an already-numbered case, changing
    its status, a keyed note) use its `_write`, so they share its
    transaction and idempotency rules rather than inventing new ones.
    """

    name = "sql"

    def __init__(self, crm: "CRM") -> None:
        self.crm = crm

    def _guard(self, work: Any) -> Any:
        from .service import _guarded

        return _guarded(lambda _self: work())(self.crm)

    def get_customer(self, customer_id: int) -> CustomerView:
        return self.crm.get_customer(customer_id)

    def find_customer_by_phone(self, phone: str) -> Optional[CustomerView]:
        number = validation.phone(phone)

        def read() -> Optional[CustomerView]:
            from . import convert

            with Session(self.crm.engine, future=True) as session:
                customer = session.execute(
                    select(Customer).where(Customer.phone == number, Customer.deleted.is_(False))
                ).scalar_one_or_none()
                return convert.customer_view(customer) if customer else None

        return self._guard(read)

    def update_profile(self, customer_id: int, field: str, value: Any, idempotency_key: str) -> CustomerView:
        return self.crm.update_profile(customer_id, field, value, idempotency_key)

    def create_case(
        self,
        customer_id: Optional[int],
        complaint: ComplaintView,
        idempotency_key: str,
        *,
        sender_id: str,
        contact_phone: Optional[str] = None,
    ) -> ComplaintView:
        from . import convert

        cid = None if customer_id is None else customer_number(customer_id)
        case = check_complaint(complaint)
        sender = validation.label(sender_id, "sender_id")
        callback = validation.phone(contact_phone) if contact_phone else None

        def work(session: Session, now: datetime) -> ComplaintView:
            existing = session.execute(
                select(Complaint).where(Complaint.ticket_number == case.ticket_number)
            ).scalar_one_or_none()
            if existing is not None:  # CRM.create_complaint already stored it here
                return convert.complaint_view(existing)
            customer = self.crm._live_customer(session, cid)
            order = (
                self.crm._customer_order(session, customer.id, case.order_number)
                if customer is not None and case.order_number
                else None
            )
            row = Complaint(
                ticket_number=case.ticket_number,
                customer_id=customer.id if customer else None,
                order=order,
                reported_order_number=case.order_number,
                contact_phone=callback,
                category=case.category,
                description=case.description,
                severity=case.severity,
                status=case.status,
                channel=case.channel,
                sender_id=sender,
                sla_due_at=policy.utc_naive(case.sla_due_at),
                created_at=policy.utc_naive(case.created_at),
                resolved_at=policy.utc_naive(case.resolved_at) if case.resolved_at else None,
            )
            session.add(row)
            session.flush()
            return convert.complaint_view(row)

        return self._guard(lambda: self.crm._write("create_case", idempotency_key, work))

    def update_case_status(self, ticket_number: str, status: str, idempotency_key: str) -> ComplaintView:
        from . import convert

        number = validation.ticket_number(ticket_number)
        wanted = case_status(status)

        def work(session: Session, now: datetime) -> ComplaintView:
            row = session.execute(
                select(Complaint).where(Complaint.ticket_number == number).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise InvalidInput(MSG_CASE_NOT_FOUND)
            row.status = wanted
            if wanted in CLOSED_CASE_STATUSES:
                row.resolved_at = row.resolved_at or now
            else:
                row.resolved_at = None
            session.flush()
            return convert.complaint_view(row)

        return self._guard(lambda: self.crm._write("update_case_status", idempotency_key, work))

    def cases_for_customer(self, customer_id: int, open_only: bool = False) -> list[ComplaintView]:
        return self.crm.complaints_for_customer(customer_id, open_only)

    def add_note(
        self, customer_id: int, kind: str, summary: str, idempotency_key: str, *, channel: str, sender_id: str
    ) -> None:
        cid = customer_number(customer_id)
        kind, text, channel, sender = note_fields(kind, summary, channel, sender_id)

        def work(session: Session, now: datetime) -> None:
            customer = self.crm._require_customer(session, cid)
            session.add(
                Interaction(
                    customer_id=customer.id, channel=channel, sender_id=sender, kind=kind,
                    summary=text, created_at=now,
                )
            )

        self._guard(lambda: self.crm._write("add_note", idempotency_key, work))


def remote_directory_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[CustomerDirectory]:
    """The remote directory to wire into `CRM`, or None for ``sql`` (the CRM's own tables)."""
    env = os.environ if env is None else env
    if (env.get(ENV_VAR) or "sql").strip().lower() == "sql":
        return None
    return directory_from_env(env=env)


def directory_from_env(crm: Optional["CRM"] = None, env: Optional[Mapping[str, str]] = None) -> CustomerDirectory:
    """The directory ``KEFU_CRM_DIRECTORY`` names (default ``sql``), configured from env.

    A configuration mistake (unknown backend, missing URL or secret) raises
    ValueError at start-up, naming the variable but never its value.
    """
    env = os.environ if env is None else env
    which = (env.get(ENV_VAR) or "sql").strip().lower()
    if which == "sql":
        if crm is None:
            from .service import CRM

            crm = CRM.from_env()
        return SqlDirectory(crm)
    if which == "zoho":
        from .backends.zoho import ZohoDirectory

        return ZohoDirectory.from_env(env)
    if which == "rest":
        from .backends.rest import RestDirectory

        return RestDirectory.from_env(env)
    raise ValueError(f"{ENV_VAR} must be one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "CustomerDirectory",
    "SqlDirectory",
    "directory_from_env",
    "remote_directory_from_env",
    "key_token",
    "profile_value",
]
