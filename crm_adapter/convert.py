"""ORM rows -> views, inside the session that loaded them.

The only place that knows both the tables and the views. Rules that views
carry as verdicts (``can_cancel`` …) are taken from `crm_adapter.policy`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from . import consent, policy
from .masking import mask_address, mask_email, mask_phone
from .models import (
    OPEN_RETURN_STATUSES,
    Complaint,
    Consent,
    ContactPreference,
    Coupon,
    Customer,
    Escalation,
    InvoiceRequest,
    Order,
    PaymentTicket,
    Product,
    ReturnRequest,
)
from .views import (
    COMPLAINT_CATEGORY_LABELS,
    COMPLAINT_STATUS_LABELS,
    ESCALATION_STATUS_LABELS,
    INVOICE_STATUS_LABELS,
    ORDER_STATUS_LABELS,
    PAYMENT_PROBLEM_LABELS,
    PRIORITY_LABELS,
    RETURN_STATUS_LABELS,
    SEVERITY_LABELS,
    TICKET_STATUS_LABELS,
    ComplaintView,
    ConsentView,
    CouponView,
    CustomerView,
    EscalationView,
    InvoiceRequestView,
    OrderItemView,
    OrderView,
    ProductView,
    QuietHoursView,
    ReturnView,
    TicketView,
)


def _t(stored: datetime) -> datetime:
    converted = policy.to_china(stored)
    assert converted is not None
    return converted


def customer_view(c: Customer) -> CustomerView:
    return CustomerView(
        id=c.id,
        name=c.name,
        masked_phone=mask_phone(c.phone),
        masked_email=mask_email(c.email),
        masked_address=mask_address(c.default_address),
        city=c.city,
        gender=c.gender,
        birthday=c.birthday,
        tier=c.tier,
        member_level=c.member_level,
        points=c.points,
        lifecycle_stage=c.lifecycle_stage,
        total_spent=round(c.total_spent or 0.0, 2),
        timezone=c.timezone,
        created_at=_t(c.created_at),
        erased=c.anonymised_at is not None,
    )


def aliases(product: Product) -> tuple[str, ...]:
    return tuple(a for a in (product.aliases or "").split("|") if a)


def product_view(p: Product) -> ProductView:
    return ProductView(
        sku=p.sku,
        name=p.name,
        aliases=aliases(p),
        category=p.category,
        price=round(p.price, 2),
        repurchase_days=p.repurchase_days,
        warranty_months=p.warranty_months,
        description=p.description,
    )


def order_view(o: Order, now: datetime) -> OrderView:
    """``now`` is naive UTC; the order's items, products and returns are loaded lazily
    unless the query eager-loaded them (the service's order queries do)."""
    deadline = policy.return_deadline(o.delivered_at) if o.status == "delivered" else None
    open_return = next((r.return_number for r in o.returns if r.status in OPEN_RETURN_STATUSES), None)
    can_return = (
        deadline is not None and policy.china_date(now) <= deadline and open_return is None
    )
    return OrderView(
        order_number=o.order_number,
        status=o.status,
        status_label=ORDER_STATUS_LABELS[o.status],
        total=round(o.total, 2),
        masked_address=mask_address(o.address),
        created_at=_t(o.created_at),
        paid_at=policy.to_china(o.paid_at),
        shipped_at=policy.to_china(o.shipped_at),
        delivered_at=policy.to_china(o.delivered_at),
        carrier=o.carrier,
        tracking_number=o.tracking_number,
        logistics_note=o.logistics_note,
        items=tuple(
            OrderItemView(
                sku=i.sku,
                name=i.name,
                category=i.product.category,
                quantity=i.quantity,
                unit_price=round(i.unit_price, 2),
            )
            for i in o.items
        ),
        can_cancel=o.status in policy.CANCELLABLE_STATUSES,
        can_change_address=o.status in policy.ADDRESS_CHANGEABLE_STATUSES,
        can_return=can_return,
        return_deadline=deadline,
        open_return_number=open_return,
    )


def return_view(r: ReturnRequest) -> ReturnView:
    product_name: Optional[str] = None
    if r.sku:
        product_name = next((i.name for i in r.order.items if i.sku == r.sku), None)
    return ReturnView(
        return_number=r.return_number,
        order_number=r.order.order_number,
        sku=r.sku,
        product_name=product_name,
        reason=r.reason,
        status=r.status,
        status_label=RETURN_STATUS_LABELS[r.status],
        refund_amount=round(r.refund_amount, 2),
        refund_eta=r.refund_eta,
        created_at=_t(r.created_at),
    )


def coupon_view(c: Coupon, now: datetime) -> CouponView:
    return CouponView(
        code=c.code,
        title=c.title,
        amount=round(c.amount, 2),
        min_spend=round(c.min_spend, 2),
        expires_at=_t(c.expires_at),
        expiring_soon=policy.coupon_expiring_soon(c.expires_at, now),
    )


def complaint_view(c: Complaint) -> ComplaintView:
    return ComplaintView(
        ticket_number=c.ticket_number,
        category=c.category,
        category_label=COMPLAINT_CATEGORY_LABELS[c.category],
        description=c.description,
        severity=c.severity,
        severity_label=SEVERITY_LABELS[c.severity],
        status=c.status,
        status_label=COMPLAINT_STATUS_LABELS[c.status],
        channel=c.channel,
        order_number=c.order.order_number if c.order is not None else c.reported_order_number,
        masked_contact_phone=mask_phone(c.contact_phone),
        created_at=_t(c.created_at),
        sla_due_at=_t(c.sla_due_at),
        resolved_at=policy.to_china(c.resolved_at),
    )


def escalation_view(e: Escalation) -> EscalationView:
    return EscalationView(
        id=e.id,
        customer_id=e.customer_id,
        status=e.status,
        status_label=ESCALATION_STATUS_LABELS[e.status],
        priority=e.priority,
        priority_label=PRIORITY_LABELS[e.priority],
        reason=e.reason,
        channel=e.channel,
        sender_id=e.sender_id,
        complaint_ticket=e.complaint.ticket_number if e.complaint is not None else None,
        created_at=_t(e.created_at),
        callback=bool(e.callback),
    )


def ticket_view(t: PaymentTicket) -> TicketView:
    return TicketView(
        ticket_number=t.ticket_number,
        problem=t.problem,
        problem_label=PAYMENT_PROBLEM_LABELS[t.problem],
        description=t.description,
        status=t.status,
        status_label=TICKET_STATUS_LABELS[t.status],
        order_number=t.order.order_number if t.order is not None else None,
        created_at=_t(t.created_at),
    )


def invoice_view(r: InvoiceRequest) -> InvoiceRequestView:
    return InvoiceRequestView(
        request_number=r.request_number,
        order_number=r.order.order_number,
        title=r.title,
        tax_number=r.tax_number,
        masked_email=mask_email(r.email),
        status=r.status,
        status_label=INVOICE_STATUS_LABELS[r.status],
        created_at=_t(r.created_at),
    )


def consent_view(customer_id: int, channel: str, purpose: str, row: Optional[Consent]) -> ConsentView:
    """The decision ``row`` as it applies to ``channel``; None: the default for ``purpose``."""
    return ConsentView(
        customer_id=customer_id,
        channel=channel,
        purpose=purpose,
        granted=row.granted if row is not None else consent.DEFAULT_GRANTED[purpose],
        decided=row is not None,
        decided_on_channel=row.channel if row is not None else None,
        source=row.source if row is not None else None,
        recorded_by=row.recorded_by if row is not None else None,
        decided_at=policy.to_china(row.created_at) if row is not None else None,
    )


def quiet_hours_view(c: Customer, preference: Optional[ContactPreference]) -> QuietHoursView:
    start, end = (
        (preference.quiet_start, preference.quiet_end) if preference is not None else consent.DEFAULT_QUIET_HOURS
    )
    return QuietHoursView(
        customer_id=c.id,
        start=start,
        end=end,
        timezone=c.timezone or consent.DEFAULT_TIMEZONE,
        is_default=preference is None,
    )
