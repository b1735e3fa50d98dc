"""The CRM's tables (SQLAlchemy declarative, portable SQLite/PostgreSQL).

Conventions, chosen so that both databases behave the same:

* times are stored as naive UTC ``DateTime``; views convert them to China
  time (see `crm_adapter.views.CHINA_TZ`);
* money is ``Numeric(12, 2)`` read back as float (``asdecimal=False``): exact
  in PostgreSQL, and callers get plain floats they can put in Rasa slots;
* status and enum-like columns are short strings guarded by CHECK
  constraints, so a typo in code fails loudly instead of creating a state no
  rule knows about;
* nothing is hard-deleted: customers are anonymised (``deleted`` and
  ``anonymised_at``, see crm_adapter.privacy), history tables (consents,
  interactions) only grow. The exceptions are rows that exist only to
  identify a person: an erased customer's channel identities and contact
  preferences are deleted.

`ProcessedOperation` is the single idempotency mechanism: every write method
inserts its key there in the same transaction as its change.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    Time,
    Unicode,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import declarative_base, relationship

# Stable constraint names, so that migrations (Alembic, later) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Base: Any = declarative_base(metadata=MetaData(naming_convention=NAMING_CONVENTION))

ORDER_STATUSES = ("pending_payment", "paid", "shipped", "delivered", "cancelled", "returned")
RETURN_STATUSES = ("requested", "approved", "received", "refunded", "rejected")
OPEN_RETURN_STATUSES = ("requested", "approved", "received")
COMPLAINT_STATUSES = ("open", "pending", "resolved", "closed")
OPEN_COMPLAINT_STATUSES = ("open", "pending")
COMPLAINT_CATEGORIES = ("logistics", "quality", "service", "price", "after_sales", "other")
COMPLAINT_OUTCOMES = ("resolved", "rejected")
COMPLAINT_EVENT_KINDS = ("created", "status", "assigned", "note", "reopened", "message", "csat")
SEVERITIES = ("high", "medium", "low")
ESCALATION_STATUSES = ("pending", "open", "resolved")
ACTIVE_ESCALATION_STATUSES = ("pending", "open")
ESCALATION_PRIORITIES = ("high", "normal")
STAFF_ROLES = ("agent", "manager", "admin")
STAFF_STATUSES = ("online", "away", "offline")
ESCALATION_EVENT_KINDS = (
    "created", "raised", "queue_notice", "claimed", "assigned", "transferred",
    "agent_message", "note", "resolved", "reopened", "csat", "callback",
)
PAYMENT_PROBLEMS = ("failed", "double_charged", "charged_no_order")
TICKET_STATUSES = ("open", "resolved")
INVOICE_STATUSES = ("requested", "issued", "rejected")
TIERS = ("core", "potential", "low")
LIFECYCLE_STAGES = ("potential", "acquisition", "growth", "loyalty", "churn")
CONSENT_PURPOSES = ("service", "marketing")
#: Where the shop can reach a customer. A consent row may also name "all",
#: which decides for every channel at once (the chat's 「退订」 does that).
CONTACT_CHANNELS = ("wechat", "web", "sms", "email", "app")
CONSENT_CHANNELS = ("all", *CONTACT_CHANNELS)


def _money(**kwargs: Any) -> Column:
    return Column(Numeric(12, 2, asdecimal=False), **kwargs)


def _in(column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


class Customer(Base):
    __tablename__ = "customers"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False)
    # Unique among live customers; anonymisation sets it to NULL.
    phone = Column(String(20), unique=True)
    email = Column(String(254))
    birthday = Column(Date)
    gender = Column(String(8))  # "male" / "female" / None
    city = Column(String(32))
    default_address = Column(String(200))
    member_level = Column(String(16), nullable=False, default="普通会员")
    points = Column(Integer, nullable=False, default=0)
    # The part of ``points`` that lapses at ``points_expire_at`` (points earned
    # in year Y expire at the end of Y+1, so at most one batch is "next").
    points_expiring = Column(Integer, nullable=False, default=0)
    points_expire_at = Column(Date)
    tier = Column(String(16), nullable=False, default="low")
    lifecycle_stage = Column(String(16), nullable=False, default="potential")
    total_spent = _money(nullable=False, default=0)
    created_at = Column(DateTime, nullable=False)
    timezone = Column(String(40), nullable=False, default="Asia/Shanghai")
    deleted = Column(Boolean, nullable=False, default=False)
    anonymised_at = Column(DateTime)

    identities = relationship("ChannelIdentity", back_populates="customer")
    orders = relationship("Order", back_populates="customer")

    __table_args__ = (
        _in("tier", TIERS),
        _in("lifecycle_stage", LIFECYCLE_STAGES),
    )


class ChannelIdentity(Base):
    """Who a channel's sender (WeChat openid, web session, ...) is in the CRM."""

    __tablename__ = "channel_identities"

    id = Column(Integer, primary_key=True)
    channel = Column(String(32), nullable=False)
    external_id = Column(String(128), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    verified_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False)

    customer = relationship("Customer", back_populates="identities")

    __table_args__ = (UniqueConstraint("channel", "external_id"),)


class Product(Base):
    __tablename__ = "products"

    id = Column(Integer, primary_key=True)
    sku = Column(String(32), nullable=False, unique=True)
    name = Column(String(64), nullable=False)
    aliases = Column(Text, nullable=False, default="")  # "|"-separated
    category = Column(String(32), nullable=False, index=True)
    price = _money(nullable=False)
    repurchase_days = Column(Integer)
    warranty_months = Column(Integer, nullable=False, default=0)
    description = Column(Text, nullable=False, default="")
    active = Column(Boolean, nullable=False, default=True)


class Order(Base):
    __tablename__ = "orders"

    id = Column(Integer, primary_key=True)
    order_number = Column(String(12), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)
    status = Column(String(20), nullable=False)
    total = _money(nullable=False)
    address = Column(String(200), nullable=False)
    created_at = Column(DateTime, nullable=False)
    paid_at = Column(DateTime)
    shipped_at = Column(DateTime)
    delivered_at = Column(DateTime)
    cancelled_at = Column(DateTime)
    carrier = Column(String(16))
    tracking_number = Column(String(32))
    logistics_note = Column(String(200))
    updated_at = Column(DateTime)

    customer = relationship("Customer", back_populates="orders")
    items = relationship("OrderItem", back_populates="order", order_by="OrderItem.id")
    returns = relationship("ReturnRequest", back_populates="order", order_by="ReturnRequest.id")

    __table_args__ = (
        _in("status", ORDER_STATUSES),
        CheckConstraint("length(order_number) = 12", name="order_number_len"),
        # Covers the analytics refresh's read of every counted order in
        # (customer, time, id) order: no sort and no table lookups (0008).
        Index("ix_orders_customer_history", "customer_id", "created_at", "id", "status", "total"),
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id = Column(Integer, primary_key=True)
    order_id = Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    product_id = Column(Integer, ForeignKey("products.id"), nullable=False, index=True)
    # Snapshots: what the customer bought, even if the catalogue changes later.
    sku = Column(String(32), nullable=False)
    name = Column(String(64), nullable=False)
    quantity = Column(Integer, nullable=False, default=1)
    unit_price = _money(nullable=False)

    order = relationship("Order", back_populates="items")
    product = relationship("Product")

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity"),)


class Coupon(Base):
    __tablename__ = "coupons"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    title = Column(String(64), nullable=False)
    amount = _money(nullable=False)
    min_spend = _money(nullable=False, default=0)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False)


class ReturnRequest(Base):
    __tablename__ = "return_requests"

    id = Column(Integer, primary_key=True)
    return_number = Column(String(20), nullable=False, unique=True)
    order_id = Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    sku = Column(String(32))  # None: the whole order
    reason = Column(Text, nullable=False)
    status = Column(String(16), nullable=False)
    refund_amount = _money(nullable=False)
    refund_eta = Column(Date)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime)

    order = relationship("Order", back_populates="returns")

    __table_args__ = (
        _in("status", RETURN_STATUSES),
        # "One open return per order", enforced by the database as well, so
        # that two concurrent requests cannot both pass the check in code.
        Index(
            "uq_return_requests_one_open",
            "order_id",
            unique=True,
            sqlite_where=text("status IN ('requested', 'approved', 'received')"),
            postgresql_where=text("status IN ('requested', 'approved', 'received')"),
        ),
    )


class Complaint(Base):
    __tablename__ = "complaints"

    id = Column(Integer, primary_key=True)
    ticket_number = Column(String(20), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"))
    order_id = Column(Integer, ForeignKey("orders.id"))
    # What the complainer typed, kept even when it could not be linked.
    reported_order_number = Column(String(12))
    # A call-back number, mostly from complainers who are not verified.
    contact_phone = Column(String(20))
    category = Column(String(16), nullable=False)
    description = Column(Text, nullable=False)
    severity = Column(String(8), nullable=False)
    status = Column(String(16), nullable=False, default="open")
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(128), nullable=False)
    sla_due_at = Column(DateTime, nullable=False)
    created_at = Column(DateTime, nullable=False)
    resolved_at = Column(DateTime)
    # The complaint log's handling columns (migration 0007, crm_adapter.complaint_log).
    assigned_to = Column(String(64))
    first_response_at = Column(DateTime)
    updated_at = Column(DateTime)
    # How a closed complaint ended: resolved for the customer, or rejected (驳回).
    outcome = Column(String(16))
    reopened_count = Column(Integer, nullable=False, default=0, server_default=text("0"))

    order = relationship("Order")

    __table_args__ = (
        _in("status", COMPLAINT_STATUSES),
        _in("category", COMPLAINT_CATEGORIES),
        _in("severity", SEVERITIES),
        _in("outcome", COMPLAINT_OUTCOMES),
        Index("ix_complaints_customer_created", "customer_id", "created_at"),
        Index("ix_complaints_status_sla", "status", "sla_due_at"),
        # Keyset paging of the complaint log, newest first, alone or under one filter.
        Index("ix_complaints_created_id", "created_at", "id"),
        Index("ix_complaints_status_created", "status", "created_at", "id"),
        Index("ix_complaints_category_created", "category", "created_at", "id"),
        Index("ix_complaints_severity_created", "severity", "created_at", "id"),
        Index("ix_complaints_channel_created", "channel", "created_at", "id"),
        Index("ix_complaints_assigned_created", "assigned_to", "created_at", "id"),
        Index("ix_complaints_sla_id", "sla_due_at", "id"),
        Index("ix_complaints_resolved_at", "resolved_at"),
    )


class ComplaintEvent(Base):
    """Append-only audit trail of one complaint: who did what, when (never updated).

    Erasure blanks ``body`` (crm_adapter.privacy) but keeps the row, so the
    handling history stays countable.
    """

    __tablename__ = "complaint_events"

    id = Column(Integer, primary_key=True)
    complaint_id = Column(Integer, ForeignKey("complaints.id"), nullable=False)
    kind = Column(String(16), nullable=False)
    actor = Column(String(64), nullable=False)
    from_status = Column(String(16))
    to_status = Column(String(16))
    body = Column(Text)
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (
        _in("kind", COMPLAINT_EVENT_KINDS),
        Index("ix_complaint_events_complaint", "complaint_id", "id"),
    )


class ComplaintSearch(Base):
    """jieba tokens of a complaint's description and conversation, space-joined.

    The databases search this text with their own index, created by
    migration 0007 only (not expressible portably here): an FTS5 table
    ``complaint_search_fts`` on SQLite, a GIN index over
    ``to_tsvector('simple', tokens)`` on PostgreSQL.
    """

    __tablename__ = "complaint_search"

    complaint_id = Column(Integer, ForeignKey("complaints.id"), primary_key=True)
    tokens = Column(Text, nullable=False)
    transcript_indexed_at = Column(DateTime)
    updated_at = Column(DateTime, nullable=False)


class Escalation(Base):
    __tablename__ = "escalations"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), index=True)
    complaint_id = Column(Integer, ForeignKey("complaints.id"))
    status = Column(String(16), nullable=False, default="pending")
    priority = Column(String(8), nullable=False, default="normal")
    reason = Column(Text, nullable=False)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(128), nullable=False)
    assigned_to = Column(String(64))
    created_at = Column(DateTime, nullable=False)
    resolved_at = Column(DateTime)
    # The desk's bookkeeping (migration 0005): SLA clocks, who resolved it,
    # a callback promised out of hours, and the customer's rating afterwards.
    updated_at = Column(DateTime)
    claimed_at = Column(DateTime)
    first_response_at = Column(DateTime)
    first_response_due_at = Column(DateTime)
    resolve_due_at = Column(DateTime)
    resolved_by = Column(String(64))
    callback = Column(Boolean, nullable=False, default=False, server_default=text("false"))
    callback_phone = Column(String(32))
    last_customer_message_at = Column(DateTime)
    last_notice_at = Column(DateTime)
    csat_score = Column(Integer)

    complaint = relationship("Complaint")

    __table_args__ = (
        _in("status", ESCALATION_STATUSES),
        _in("priority", ESCALATION_PRIORITIES),
        Index("ix_escalations_conversation", "channel", "sender_id", "status"),
        Index("ix_escalations_queue", "status", "priority", "created_at"),
    )


class Staff(Base):
    """A desk user: agents answer chats, managers also review, admins also manage users."""

    __tablename__ = "staff"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    display_name = Column(String(64), nullable=False)
    role = Column(String(16), nullable=False)
    password_hash = Column(String(255), nullable=False)
    max_open = Column(Integer, nullable=False, default=5)
    status = Column(String(16), nullable=False, default="offline")
    active = Column(Boolean, nullable=False, default=True)
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime)
    last_seen_at = Column(DateTime)
    created_at = Column(DateTime, nullable=False)
    # May see customers' phones, names and addresses unmasked (complaint log,
    # exports); granted by `python -m bot.desk.admin grant-pii`.
    pii_access = Column(Boolean, nullable=False, default=False, server_default=text("false"))

    __table_args__ = (_in("role", STAFF_ROLES), _in("status", STAFF_STATUSES))


class StaffSession(Base):
    """A signed-in browser. Only a hash of the cookie's token is stored."""

    __tablename__ = "staff_sessions"

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    staff_id = Column(Integer, ForeignKey("staff.id"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)


class EscalationEvent(Base):
    """Append-only timeline of one escalation: who did what, when (never updated)."""

    __tablename__ = "escalation_events"

    id = Column(Integer, primary_key=True)
    escalation_id = Column(Integer, ForeignKey("escalations.id"), nullable=False)
    kind = Column(String(16), nullable=False)
    actor = Column(String(64), nullable=False)
    body = Column(Text)
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (
        _in("kind", ESCALATION_EVENT_KINDS),
        Index("ix_escalation_events_escalation", "escalation_id", "id"),
    )


class CannedResponse(Base):
    """A reply agents insert by short code (e.g. /退款)."""

    __tablename__ = "canned_responses"

    id = Column(Integer, primary_key=True)
    code = Column(String(32), nullable=False, unique=True)
    title = Column(String(64), nullable=False)
    body = Column(Text, nullable=False)
    updated_at = Column(DateTime, nullable=False)


class PaymentTicket(Base):
    __tablename__ = "payment_tickets"

    id = Column(Integer, primary_key=True)
    ticket_number = Column(String(20), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    order_id = Column(Integer, ForeignKey("orders.id"))
    problem = Column(String(20), nullable=False)
    description = Column(Text, nullable=False, default="")
    status = Column(String(16), nullable=False, default="open")
    created_at = Column(DateTime, nullable=False)
    resolved_at = Column(DateTime)

    order = relationship("Order")

    __table_args__ = (_in("problem", PAYMENT_PROBLEMS), _in("status", TICKET_STATUSES))


class InvoiceRequest(Base):
    __tablename__ = "invoice_requests"

    id = Column(Integer, primary_key=True)
    request_number = Column(String(20), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False, index=True)
    order_id = Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    title = Column(String(100), nullable=False)
    tax_number = Column(String(18))
    email = Column(String(254), nullable=False)
    status = Column(String(16), nullable=False, default="requested")
    created_at = Column(DateTime, nullable=False)
    issued_at = Column(DateTime)

    order = relationship("Order")

    __table_args__ = (_in("status", INVOICE_STATUSES),)


class Interaction(Base):
    """One line of contact history (the customer-360 timeline)."""

    __tablename__ = "interactions"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"))
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(128), nullable=False)
    kind = Column(String(32), nullable=False)
    summary = Column(String(500), nullable=False, default="")
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (Index("ix_interactions_customer_created", "customer_id", "created_at"),)


class Consent(Base):
    """Consent history: a new row per decision, never updated.

    For one (channel, purpose) the newest row that names the channel or
    "all" wins (see crm_adapter.consent). ``recorded_by`` says who made the
    decision ("customer", "agent:<id>", "system"), ``source`` where
    ("chat", "registration", "unsubscribe_link" ...), ``created_at`` when.
    """

    __tablename__ = "consents"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)
    channel = Column(String(32), nullable=False)
    purpose = Column(String(16), nullable=False)
    granted = Column(Boolean, nullable=False)
    source = Column(String(64), nullable=False)
    recorded_by = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (
        _in("purpose", CONSENT_PURPOSES),
        _in("channel", CONSENT_CHANNELS),
        Index("ix_consents_lookup", "customer_id", "channel", "purpose", "created_at"),
    )


class ContactPreference(Base):
    """A customer's quiet hours (local wall-clock times in ``Customer.timezone``).

    No row means the shop's default (crm_adapter.consent.DEFAULT_QUIET_HOURS),
    so changing the default reaches everyone who never chose. ``start ==
    end`` means no quiet hours. Kept out of ``customers`` so that adding it
    did not make SQLite copy the table every other table refers to.
    """

    __tablename__ = "contact_preferences"

    customer_id = Column(Integer, ForeignKey("customers.id"), primary_key=True)
    quiet_start = Column(Time, nullable=False)
    quiet_end = Column(Time, nullable=False)
    updated_at = Column(DateTime, nullable=False)


class CsatRating(Base):
    __tablename__ = "csat_ratings"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), index=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(128), nullable=False)
    score = Column(Integer, nullable=False)
    comment = Column(String(500))
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="score"),)


class VerificationAttempt(Base):
    """Order-number + phone-last4 attempts, to stop guessing the 10,000 combinations."""

    __tablename__ = "verification_attempts"

    id = Column(Integer, primary_key=True)
    order_number = Column(String(12), nullable=False)
    succeeded = Column(Boolean, nullable=False)
    created_at = Column(DateTime, nullable=False)

    __table_args__ = (Index("ix_verification_attempts_order", "order_number", "created_at"),)


class NumberSequence(Base):
    """Daily counters behind ticket numbers (TS/PT/FP/R + YYYYMMDD + sequence).

    One row per prefix and day, locked with SELECT ... FOR UPDATE while a
    number is taken, so that concurrent writers on PostgreSQL queue instead
    of computing the same "max + 1" (SQLite's single writer does this anyway).
    """

    __tablename__ = "number_sequences"

    stem = Column(String(20), primary_key=True)  # e.g. "TS20260115"
    last = Column(Integer, nullable=False)


class ProcessedOperation(Base):
    """Idempotency: the stored result of every write, keyed by the caller's key."""

    __tablename__ = "processed_operations"

    id = Column(Integer, primary_key=True)
    idempotency_key = Column(String(255), nullable=False, unique=True)
    kind = Column(String(32), nullable=False)
    # Whose data ``result`` may hold, so that erasing a customer can scrub it.
    customer_id = Column(Integer, index=True)
    result = Column(JSON)
    created_at = Column(DateTime, nullable=False)



# ---------------------------------------------------------------------------
# Analytics (crm_adapter.analytics): the stored customer model.
#
# Written only by `crm_adapter.analytics.refresh` (and `segments` for the
# cluster column); read by `CRM.customer_profile` and the KPI functions.
# Facts (counts, first/last order, window sums, signals) are stored next to
# what is derived from them (scores, tier, stage, CLV, churn risk) so that a
# single customer can be re-derived without touching the order history, and
# ``next_review_at`` says when time alone would make a stored value wrong.
# ---------------------------------------------------------------------------

ANALYTICS_TIERS = ("core", "potential", "low")
ANALYTICS_STAGES = ("potential", "new", "growth", "loyal", "at_risk", "churned")
ANALYTICS_RUN_KINDS = ("full", "incremental")


class CustomerMetrics(Base):
    """One row per live customer: RFM, tier, lifecycle stage, CLV, churn risk."""

    __tablename__ = "customer_metrics"

    customer_id = Column(Integer, ForeignKey("customers.id"), primary_key=True)
    # Facts from the history (counted orders only). ``*_day`` columns are
    # day numbers (fractional days since 1970-01-01 UTC): exact floats that
    # compare the same in Python and in SQL, which population cut points need.
    order_count = Column(Integer, nullable=False)
    first_order_day = Column(Float)
    last_order_day = Column(Float)
    lifetime_spend = _money(nullable=False)
    median_interval_days = Column(Float)
    recency_days = Column(Float)  # as of computed_at
    frequency = Column(Integer, nullable=False)  # counted orders in the window
    monetary = _money(nullable=False)  # net spend in the window
    window_oldest_day = Column(Float)  # oldest order inside the window
    complaints_recent = Column(Integer, nullable=False)
    complaints_oldest_day = Column(Float)
    csat_avg = Column(Float)
    csat_count = Column(Integer, nullable=False)
    csat_oldest_day = Column(Float)
    # Derived.
    r_score = Column(Integer)
    f_score = Column(Integer)
    m_score = Column(Integer)
    tier = Column(String(16), nullable=False)
    stage = Column(String(16), nullable=False)
    stage_since = Column(DateTime, nullable=False)
    clv_simple = _money(nullable=False)
    clv_discounted = _money(nullable=False)
    churn_risk = Column(Float)
    cluster = Column(Integer)
    computed_at = Column(DateTime, nullable=False)
    # Earliest moment at which the passage of time changes a stored value.
    next_review_at = Column(DateTime)

    __table_args__ = (
        CheckConstraint("tier IN ('core', 'potential', 'low')", name="tier"),
        CheckConstraint(
            "stage IN ('potential', 'new', 'growth', 'loyal', 'at_risk', 'churned')", name="stage"
        ),
        Index("ix_customer_metrics_next_review_at", "next_review_at"),
        Index("ix_customer_metrics_tier_stage", "tier", "stage"),
    )


class CustomerSegmentChange(Base):
    """Tier and stage changes, so that upgrade and reactivation rates can be measured."""

    __tablename__ = "customer_segment_changes"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)
    field = Column(String(8), nullable=False)  # "tier" / "stage"
    old_value = Column(String(16))
    new_value = Column(String(16), nullable=False)
    changed_at = Column(DateTime, nullable=False)

    __table_args__ = (
        CheckConstraint("field IN ('tier', 'stage')", name="field"),
        Index("ix_customer_segment_changes_changed", "field", "changed_at"),
        Index("ix_customer_segment_changes_customer", "customer_id", "changed_at"),
    )


class AnalyticsRun(Base):
    """One refresh: when, what it saw up to, and the population figures it used."""

    __tablename__ = "analytics_runs"

    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False)
    started_at = Column(DateTime, nullable=False)  # wall clock
    finished_at = Column(DateTime, nullable=False)
    as_of = Column(DateTime, nullable=False)  # the "now" of the computation; the next watermark
    customers_refreshed = Column(Integer, nullable=False)
    rows_rescored = Column(Integer, nullable=False)
    excluded_orders = Column(Integer, nullable=False)
    population_interval_days = Column(Float, nullable=False)
    cuts = Column(JSON, nullable=False)  # {"r": [...], "f": [...], "m": [...]}
    settings = Column(JSON, nullable=False)

    __table_args__ = (_in("kind", ANALYTICS_RUN_KINDS),)


class ProductPopularity(Base):
    """Units sold per product as of the last analytics refresh (migration 0009;
    read by `crm_adapter.recommend` instead of summing every order line per request)."""

    __tablename__ = "product_popularity"

    product_id = Column(Integer, primary_key=True, autoincrement=False)
    units_recent = Column(Integer, nullable=False)  # counted orders since window_start
    units_all = Column(Integer, nullable=False)
    window_start = Column(DateTime, nullable=False)  # as_of - 90 days
    as_of = Column(DateTime, nullable=False)


class ProductCopurchase(Base):
    """Distinct orders holding both products, as of the last refresh; one row
    per direction (product_id -> other_id and back)."""

    __tablename__ = "product_copurchases"

    product_id = Column(Integer, primary_key=True, autoincrement=False)
    other_id = Column(Integer, primary_key=True, autoincrement=False)
    orders = Column(Integer, nullable=False)


class NpsResponse(Base):
    """"How likely are you to recommend us?" 0-10; CSAT (1-5) lives in csat_ratings."""

    __tablename__ = "nps_responses"

    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id"), index=True)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(128), nullable=False)
    score = Column(Integer, nullable=False)
    comment = Column(String(500))
    created_at = Column(DateTime, nullable=False, index=True)

    __table_args__ = (CheckConstraint("score BETWEEN 0 AND 10", name="score"),)


# Lookups the incremental refresh and the KPIs make on existing tables.
Index("ix_orders_updated_at", Order.updated_at)
Index("ix_orders_created_at", Order.created_at)
# With the two above, the incremental refresh's "changed since" OR query
# becomes index lookups instead of a scan of every order (0008).
Index("ix_orders_paid_at", Order.paid_at)
Index("ix_orders_cancelled_at", Order.cancelled_at)
Index("ix_complaints_created_at", Complaint.created_at)
Index("ix_csat_ratings_created_at", CsatRating.created_at)

# -- Outbox: writes waiting for a remote customer directory (crm_adapter.outbox) --

OUTBOX_STATUSES = ("pending", "done", "dead")


class OutboxEntry(Base):
    """One write for the company CRM (Zoho, REST), kept until it is confirmed there.

    A row is written before the remote call and marked ``done`` after it, so
    a crash or an unreachable CRM loses nothing; ``idempotency_key`` travels
    with every attempt so that the CRM never stores the write twice.
    ``claimed_until`` is a lease: a drainer that stalls past it gives the row
    back to the next one.
    """

    __tablename__ = "outbox"

    id = Column(Integer, primary_key=True)
    idempotency_key = Column(String(255), nullable=False, unique=True)
    backend = Column(String(16), nullable=False)
    operation = Column(String(32), nullable=False)
    payload = Column(JSON, nullable=False)
    status = Column(String(8), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(500))
    result = Column(JSON)
    next_attempt_at = Column(DateTime, nullable=False)
    claimed_until = Column(DateTime)
    claim_token = Column(String(32))
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    done_at = Column(DateTime)

    __table_args__ = (
        _in("status", OUTBOX_STATUSES),
        Index("ix_outbox_status_id", "status", "id"),
    )


# -- Proactive care (crm_adapter.care, bot/scheduler) ---------------------------

#: queued -> sending -> sent -> delivered; deferred (waits for the customer's next
#: chat); failed (retried with back-off) -> dead; skipped (with a reason).
CARE_STATUSES = ("queued", "sending", "sent", "delivered", "deferred", "failed", "dead", "skipped")
CARE_VARIANTS = ("A", "B")


class CareSend(Base):
    """One care message: (campaign, customer, occasion) at most once, ever.

    Written before anything is sent, so the unique constraint -- not care in
    the code -- is what keeps a crash, a restart or a second scheduler from
    greeting a customer twice. ``claimed_until``/``claim_token`` are a lease
    like the outbox's: a sender that dies gives the row back when it lapses.
    ``text`` is the rendered message (it may carry the customer's name, so
    erasure blanks it); ``conversation_id`` is the chat it was pushed into.
    """

    __tablename__ = "care_sends"

    id = Column(Integer, primary_key=True)
    campaign = Column(String(48), nullable=False)
    customer_id = Column(Integer, ForeignKey("customers.id"), nullable=False)
    occasion = Column(String(64), nullable=False)
    variant = Column(String(1), nullable=False)
    purpose = Column(String(16), nullable=False)
    status = Column(String(16), nullable=False)
    reason = Column(String(32))
    channel = Column(String(16))
    # What the template needs (name, holiday, ticket ...), fixed at selection;
    # ``text`` is rendered from it when the message goes out.
    context = Column(JSON, nullable=False)
    text = Column(Text)
    coupon_code = Column(String(32))
    conversation_id = Column(String(128))
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False)
    claimed_until = Column(DateTime)
    claim_token = Column(String(32))
    last_error = Column(String(500))
    expires_at = Column(DateTime, nullable=False)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    sent_at = Column(DateTime)
    delivered_at = Column(DateTime)
    replied_at = Column(DateTime)
    outcome = Column(String(16))  # the customer's answer to a follow-up: "solved" / "unsolved"

    __table_args__ = (
        UniqueConstraint("campaign", "customer_id", "occasion"),
        _in("status", CARE_STATUSES),
        _in("variant", CARE_VARIANTS),
        _in("purpose", CONSENT_PURPOSES),
        Index("ix_care_sends_status_next", "status", "next_attempt_at"),
        Index("ix_care_sends_customer_created", "customer_id", "created_at"),
    )


class CareCampaignState(Base):
    """A campaign's runtime state; its definition lives in bot/scheduler/campaigns.yml."""

    __tablename__ = "care_campaign_states"

    campaign = Column(String(48), primary_key=True)
    paused = Column(Boolean, nullable=False, default=False)
    last_run_at = Column(DateTime)
    last_run_day = Column(Date)
    last_selected = Column(Integer)
    last_summary = Column(JSON)  # counts of the last run: selected, queued, skipped per reason
    updated_at = Column(DateTime, nullable=False)
    updated_by = Column(String(64), nullable=False)


class CareChannelPreference(Base):
    """Where a customer wants to hear from the shop; no row: their latest chat channel."""

    __tablename__ = "care_channel_preferences"

    customer_id = Column(Integer, ForeignKey("customers.id"), primary_key=True)
    channel = Column(String(16), nullable=False)
    updated_at = Column(DateTime, nullable=False)

    __table_args__ = (_in("channel", CONTACT_CHANNELS),)


class CareConversation(Base):
    """The chat a customer was last recognised in, per Rasa channel.

    A website conversation's id is a browser session id, unknowable from the
    shop uid; the scheduler needs it to push into a live widget.
    """

    __tablename__ = "care_conversations"

    customer_id = Column(Integer, ForeignKey("customers.id"), primary_key=True)
    channel = Column(String(32), primary_key=True)
    conversation_id = Column(String(128), nullable=False)
    seen_at = Column(DateTime, nullable=False)


class SchedulerLease(Base):
    """Leader election for the scheduler: whoever holds an unexpired row leads."""

    __tablename__ = "scheduler_leases"

    name = Column(String(32), primary_key=True)
    holder = Column(String(128), nullable=False)
    acquired_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)


class CareJob(Base):
    """APScheduler's SQLAlchemyJobStore table (same shape), so migrations own it."""

    __tablename__ = "care_jobs"

    id = Column(Unicode(191), primary_key=True)
    next_run_time = Column(Float(25), index=True)
    job_state = Column(LargeBinary, nullable=False)


__all__ = [
    "Base",
    "Customer",
    "ChannelIdentity",
    "Product",
    "Order",
    "OrderItem",
    "Coupon",
    "ReturnRequest",
    "Complaint",
    "Escalation",
    "Staff",
    "StaffSession",
    "EscalationEvent",
    "CannedResponse",
    "PaymentTicket",
    "InvoiceRequest",
    "Interaction",
    "Consent",
    "ContactPreference",
    "CsatRating",
    "VerificationAttempt",
    "NumberSequence",
    "ProcessedOperation",
    "CustomerMetrics",
    "CustomerSegmentChange",
    "AnalyticsRun",
    "NpsResponse",
    "OutboxEntry",
    "CareSend",
    "CareCampaignState",
    "CareChannelPreference",
    "CareConversation",
    "SchedulerLease",
    "CareJob",
]
