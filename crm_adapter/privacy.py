"""A customer's rights over their data (个人信息保护法): see all of it, have it erased.

    python -m crm_adapter.privacy [--url URL] export CUSTOMER_ID [--masked] [--output FILE]
    python -m crm_adapter.privacy [--url URL] erase CUSTOMER_ID [--key KEY]

`export_data` gathers everything the CRM holds about one customer as plain
JSON-ready data: for the customer themself (raw, it is their own data) or,
with ``masked``, for anyone else who needs the shape but not the contact
details (support staff, a bug report) -- masked with crm_adapter.masking.

`erase` anonymises rather than deletes, because the shop's statistics
(complaint counts by category and severity, order amounts, CSAT scores,
timestamps) must stay true. What can identify a person goes: name, phone,
email, birthday, gender, addresses, tracking numbers, channel identities
(so the customer can no longer be recognised on any channel), the free text
of complaints, escalations, tickets, returns, interactions and ratings
(customers type phone numbers and names into it), care messages (their text
and template context carry the name; pending ones are cancelled), invoice contact data, the
sender ids that link conversations to them, and stored idempotency results
that copied any of this. Records a customer left before being verified are
found through their channel identities and treated the same way.
The customer's city and tier stay, as coarse segments for statistics.

Both functions run inside the caller's session (the CRM's read or write
transaction); the command line goes through `CRM`, so erasure is an
idempotent write like any other.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date, datetime, time
from typing import Any, Callable, Optional, Sequence

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from . import policy
from .masking import guard_logger, mask_address, mask_email, mask_name, mask_phone, mask_text
from .models import (
    CONSENT_PURPOSES,
    ChannelIdentity,
    Complaint,
    ComplaintEvent,
    ComplaintSearch,
    Consent,
    ContactPreference,
    Coupon,
    CsatRating,
    CareChannelPreference,
    CareConversation,
    CareSend,
    Customer,
    Escalation,
    EscalationEvent,
    Interaction,
    InvoiceRequest,
    Order,
    OrderItem,
    PaymentTicket,
    ProcessedOperation,
    ReturnRequest,
)

log = guard_logger(__name__)

EXPORT_FORMAT = "kefu-customer-export/1"
REDACTED = "[已删除]"
ERASED_NAME = "已注销用户"
ERASURE_SOURCE = "erasure"
#: The idempotency kind under which `CRM.erase_customer` stores its report.
ERASURE_KIND = "erase_customer"


def _mask_identifier(value: Optional[str]) -> Optional[str]:
    """A channel sender id (WeChat openid …): enough to tell two apart, not to reuse."""
    if not value:
        return value
    return value[:3] + "****" if len(value) > 6 else "****"


def _mask_birthday(value: Optional[date]) -> Optional[str]:
    return f"{value.year}-**-**" if value else None


def _mask_free_text(value: Optional[str]) -> Optional[str]:
    return mask_text(value) if value else value


#: Per table, the columns that hold personal data and how a masked export shows them.
_MASKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "customers": {
        "name": mask_name, "phone": mask_phone, "email": mask_email,
        "default_address": mask_address, "birthday": _mask_birthday,
    },
    "channel_identities": {"external_id": _mask_identifier},
    "orders": {"address": mask_address, "tracking_number": _mask_identifier},
    "return_requests": {"reason": _mask_free_text},
    "complaints": {"description": _mask_free_text, "contact_phone": mask_phone, "sender_id": _mask_identifier},
    "escalations": {"reason": _mask_free_text, "sender_id": _mask_identifier},
    "payment_tickets": {"description": _mask_free_text},
    "invoice_requests": {"email": mask_email},
    "interactions": {"summary": _mask_free_text, "sender_id": _mask_identifier},
    "csat_ratings": {"comment": _mask_free_text, "sender_id": _mask_identifier},
    # Care texts are rendered from templates with the customer's name: hidden whole.
    "care_sends": {"text": lambda _: "****", "context": lambda _: "****", "conversation_id": _mask_identifier},
    "care_conversations": {"conversation_id": _mask_identifier},
}


def _plain(value: Any) -> Any:
    """A column value as JSON: times in China time (what staff and customers read)."""
    if isinstance(value, datetime):
        converted = policy.to_china(value)
        return converted.isoformat() if converted else None
    if isinstance(value, (date, time)):
        return value.isoformat()
    return value


def _row(obj: Any, masked: bool) -> dict[str, Any]:
    masks = _MASKS.get(obj.__table__.name, {}) if masked else {}
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        if column.key in masks and value is not None:
            value = masks[column.key](value)
        out[column.key] = _plain(value)
    return out


def _linked(model: Any, customer_id: int, identities: list[tuple[str, str]]) -> Any:
    """Rows of ``model`` that are this customer's: by id, or left anonymously by one of
    their channel identities (before they were verified)."""
    anonymous = [
        and_(model.customer_id.is_(None), model.channel == channel, model.sender_id == sender)
        for channel, sender in identities
    ]
    return or_(model.customer_id == customer_id, *anonymous) if anonymous else model.customer_id == customer_id


def _identities(session: Session, customer_id: int) -> list[ChannelIdentity]:
    return list(session.execute(
        select(ChannelIdentity).where(ChannelIdentity.customer_id == customer_id).order_by(ChannelIdentity.id)
    ).scalars())


def _all(session: Session, query: Any) -> list[Any]:
    return list(session.execute(query).scalars())


def export_data(session: Session, customer: Customer, now: datetime, *, masked: bool = False) -> dict[str, Any]:
    """Everything about ``customer`` as JSON-ready data (see the module docstring)."""
    cid = customer.id
    identities = _identities(session, cid)
    pairs = [(i.channel, i.external_id) for i in identities]
    orders = _all(session, select(Order).where(Order.customer_id == cid).order_by(Order.created_at, Order.id))
    items = _all(session, select(OrderItem).where(OrderItem.order_id.in_([o.id for o in orders])).order_by(OrderItem.id)) if orders else []
    preference = session.get(ContactPreference, cid)

    def rows(model: Any, where: Any) -> list[dict[str, Any]]:
        return [_row(r, masked) for r in _all(session, select(model).where(where).order_by(model.id))]

    exported_orders = []
    for order in orders:
        entry = _row(order, masked)
        entry["items"] = [_row(i, masked) for i in items if i.order_id == order.id]
        exported_orders.append(entry)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _plain(now),
        "masked": masked,
        "customer": _row(customer, masked),
        "contact_preferences": _row(preference, masked) if preference else None,
        "identities": [_row(i, masked) for i in identities],
        "orders": exported_orders,
        "returns": rows(ReturnRequest, ReturnRequest.customer_id == cid),
        "complaints": rows(Complaint, _linked(Complaint, cid, pairs)),
        "complaint_events": rows(ComplaintEvent, ComplaintEvent.complaint_id.in_(
            select(Complaint.id).where(_linked(Complaint, cid, pairs)).scalar_subquery())),
        "escalations": rows(Escalation, _linked(Escalation, cid, pairs)),
        "payment_tickets": rows(PaymentTicket, PaymentTicket.customer_id == cid),
        "invoice_requests": rows(InvoiceRequest, InvoiceRequest.customer_id == cid),
        "interactions": rows(Interaction, _linked(Interaction, cid, pairs)),
        "consents": rows(Consent, Consent.customer_id == cid),
        "csat_ratings": rows(CsatRating, _linked(CsatRating, cid, pairs)),
        "coupons": rows(Coupon, Coupon.customer_id == cid),
        "care_messages": rows(CareSend, CareSend.customer_id == cid),
        "care_channel_preference": [_row(r, masked) for r in _all(
            session, select(CareChannelPreference).where(CareChannelPreference.customer_id == cid))],
        "care_conversations": [_row(r, masked) for r in _all(
            session, select(CareConversation).where(CareConversation.customer_id == cid))],
    }


def _unlinked_results(session: Session, customer_id: int, pairs: list[tuple[str, str]]) -> list[ProcessedOperation]:
    """Stored results of this customer's complaints and escalations that carry no
    ``customer_id``: left before verification, or written before revision 0003.

    A write stores its result with the same ``created_at`` as the row it made,
    so candidates are narrowed by time and confirmed by ticket number / id.
    """
    wanted: dict[str, set[Any]] = {"create_complaint": set(), "create_escalation": set()}
    times: set[datetime] = set()
    for number, created in session.execute(
        select(Complaint.ticket_number, Complaint.created_at).where(_linked(Complaint, customer_id, pairs))
    ):
        wanted["create_complaint"].add(number)
        times.add(created)
    for ident, created in session.execute(
        select(Escalation.id, Escalation.created_at).where(_linked(Escalation, customer_id, pairs))
    ):
        wanted["create_escalation"].add(ident)
        times.add(created)
    if not times:
        return []
    candidates = session.execute(
        select(ProcessedOperation).where(
            ProcessedOperation.customer_id.is_(None),
            ProcessedOperation.kind.in_(tuple(wanted)),
            ProcessedOperation.created_at.in_(sorted(times)),
        )
    ).scalars()
    key = {"create_complaint": "ticket_number", "create_escalation": "id"}
    return [
        op for op in candidates
        if isinstance(op.result, dict)
        and op.result.get("fields", {}).get(key[op.kind]) in wanted[op.kind]
    ]


def erase(session: Session, customer: Customer, now: datetime) -> dict[str, int]:
    """Anonymise ``customer`` in place (see the module docstring); returns what was touched.

    Idempotent by construction: every step sets fixed values, so running it
    on an erased customer changes nothing that matters.
    """
    cid = customer.id
    pairs = [(i.channel, i.external_id) for i in _identities(session, cid)]
    marker = f"erased-{cid}"
    redacted = 0
    # Found now, while the identities that link anonymous records still exist.
    unlinked_results = _unlinked_results(session, cid, pairs)

    def blank(model: Any, where: Any, **values: Any) -> None:
        """Set ``values`` on the matching rows that do not hold them yet (so a re-run counts 0)."""
        nonlocal redacted
        columns = model.__table__.c
        differs = [columns[k].isnot(None) if v is None else columns[k] != v for k, v in values.items()]
        redacted += session.execute(
            update(model).where(where, or_(*differs)).values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount or 0

    # Conversation records first: they are found through the identities deleted below.
    complaint_ids = select(Complaint.id).where(_linked(Complaint, cid, pairs)).scalar_subquery()
    blank(ComplaintEvent, ComplaintEvent.complaint_id.in_(complaint_ids), body=REDACTED)
    # The search index holds the words of descriptions and transcripts: it goes with them.
    redacted += session.execute(
        delete(ComplaintSearch).where(ComplaintSearch.complaint_id.in_(complaint_ids))
        .execution_options(synchronize_session=False)).rowcount or 0
    blank(Complaint, _linked(Complaint, cid, pairs), description=REDACTED, contact_phone=None, sender_id=marker)
    escalation_ids = select(Escalation.id).where(_linked(Escalation, cid, pairs)).scalar_subquery()
    blank(EscalationEvent, EscalationEvent.escalation_id.in_(escalation_ids), body=REDACTED)
    blank(Escalation, _linked(Escalation, cid, pairs), reason=REDACTED, sender_id=marker, callback_phone=None)
    blank(Interaction, _linked(Interaction, cid, pairs), summary=REDACTED, sender_id=marker)
    blank(CsatRating, _linked(CsatRating, cid, pairs), comment=None, sender_id=marker)
    blank(ReturnRequest, ReturnRequest.customer_id == cid, reason=REDACTED)
    blank(PaymentTicket, PaymentTicket.customer_id == cid, description=REDACTED)
    blank(InvoiceRequest, InvoiceRequest.customer_id == cid, title=REDACTED, tax_number=None, email=REDACTED)
    blank(Order, Order.customer_id == cid, address=REDACTED, tracking_number=None)

    from .care import Care  # here: care imports the service, which imports this module

    redacted += Care.erase(session, cid, REDACTED)

    identities_removed = session.execute(
        delete(ChannelIdentity).where(ChannelIdentity.customer_id == cid).execution_options(synchronize_session=False)
    ).rowcount or 0
    session.execute(delete(ContactPreference).where(ContactPreference.customer_id == cid))
    # A replayed write then returns None instead of a copy of the erased data.
    # Erasure results hold only counts and stay, so that replaying one still answers.
    # (Compared in Python: a stored None is JSON 'null', not SQL NULL.)
    scrubbed = 0
    own_results = session.execute(
        select(ProcessedOperation).where(
            ProcessedOperation.customer_id == cid, ProcessedOperation.kind != ERASURE_KIND
        )
    ).scalars()
    for operation in (*own_results, *unlinked_results):
        if operation.result is not None:
            operation.result = None
            scrubbed += 1

    if customer.anonymised_at is None:
        # The consent history stays as the record of what was agreed; it ends with
        # a withdrawal of everything, so no stale "yes" can ever be read again.
        for purpose in CONSENT_PURPOSES:
            session.add(Consent(customer_id=cid, channel="all", purpose=purpose, granted=False,
                                source=ERASURE_SOURCE, recorded_by="system", created_at=now))

    customer.name = ERASED_NAME
    customer.phone = None
    customer.email = None
    customer.birthday = None
    customer.gender = None
    customer.default_address = None
    customer.deleted = True
    customer.anonymised_at = customer.anonymised_at or now
    session.flush()
    log.info("customer %s erased: %s identities removed, %s records redacted", cid, identities_removed, redacted)
    return {
        "identities_removed": identities_removed,
        "records_redacted": redacted,
        "stored_results_scrubbed": scrubbed,
    }


def _write_private(path: str, text: str) -> None:
    """Create ``path`` readable by its owner only: an export is personal data."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import CRMError
    from .service import CRM  # here: the service imports this module

    parser = argparse.ArgumentParser(prog="python -m crm_adapter.privacy", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: KEFU_CRM_URL or var/crm.sqlite3)")
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="print (or write) everything about one customer as JSON")
    exp.add_argument("customer_id")
    exp.add_argument("--masked", action="store_true", help="mask phone, email, name, addresses and free text")
    exp.add_argument("--output", help="write to this file (mode 600) instead of stdout")
    era = sub.add_parser("erase", help="anonymise one customer (irreversible; idempotent)")
    era.add_argument("customer_id")
    era.add_argument("--key", help="idempotency key (default: privacy-cli:erase:CUSTOMER_ID)")
    args = parser.parse_args(argv)

    crm = CRM(args.url) if args.url else CRM.from_env()
    try:
        if args.command == "export":
            data = crm.export_customer(args.customer_id, masked=args.masked)
            text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
            if args.output:
                _write_private(args.output, text)
                print(f"exported customer {data['customer']['id']} to {args.output}", file=sys.stderr)
            else:
                sys.stdout.write(text)
        else:
            report = crm.erase_customer(args.customer_id, args.key or f"privacy-cli:erase:{args.customer_id}")
            print(
                f"customer {report.customer_id} erased at {report.erased_at.isoformat()}: "
                f"{report.identities_removed} identities removed, {report.records_redacted} records redacted, "
                f"{report.stored_results_scrubbed} stored results scrubbed"
            )
    except CRMError as exc:
        message = getattr(exc, "message_zh", None) or str(exc) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        crm.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
