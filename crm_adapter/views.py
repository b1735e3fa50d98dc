"""What the CRM hands to callers: frozen, plain dataclasses.

Never ORM objects — those would tie actions to sessions and let them write
around the adapter. Views are safe to keep, compare and put in Rasa slots
(money is float, sequences are tuples, times are aware datetimes in China
time because that is the time the bot speaks).

Phone numbers, email addresses and street addresses are only present masked
(``masked_phone`` …): whatever an action does with a view — speak it, log
it, store it in a slot — it cannot leak them. (Name and birthday are there
in full: the bot greets by name, and birthday care needs the date.)
Chinese ``*_label`` fields are the words the bot says.

The codec at the bottom (`encode` / `decode`) turns a view into JSON and back;
it is how a repeated write returns exactly the first call's result.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Optional

#: China has had no daylight saving since 1991: a fixed offset is exact.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

ORDER_STATUS_LABELS = {
    "pending_payment": "待付款",
    "paid": "已付款，待发货",
    "shipped": "已发货",
    "delivered": "已签收",
    "cancelled": "已取消",
    "returned": "已退货",
}
RETURN_STATUS_LABELS = {
    "requested": "已提交，待审核",
    "approved": "审核通过，待退款",
    "received": "仓库已收货，退款处理中",
    "refunded": "已退款",
    "rejected": "未通过审核",
}
COMPLAINT_STATUS_LABELS = {
    "open": "已受理，待处理",
    "pending": "处理中",
    "resolved": "已解决",
    "closed": "已关闭",
}
COMPLAINT_CATEGORY_LABELS = {
    "logistics": "物流配送",
    "quality": "商品质量",
    "service": "服务态度",
    "price": "价格问题",
    "after_sales": "售后服务",
    "other": "其他问题",
}
SEVERITY_LABELS = {"high": "紧急", "medium": "重要", "low": "一般"}
ESCALATION_STATUS_LABELS = {"pending": "排队中", "open": "人工客服处理中", "resolved": "已处理"}
PRIORITY_LABELS = {"high": "优先", "normal": "普通"}
PAYMENT_PROBLEM_LABELS = {
    "failed": "支付失败",
    "double_charged": "重复扣款",
    "charged_no_order": "已扣款但未生成订单",
}
TICKET_STATUS_LABELS = {"open": "处理中", "resolved": "已处理"}
INVOICE_STATUS_LABELS = {"requested": "已提交，开具中", "issued": "已开具", "rejected": "未通过"}


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str
    masked_phone: str
    masked_email: str
    masked_address: str
    city: Optional[str]
    gender: Optional[str]
    birthday: Optional[date]
    tier: str  # core / potential / low — for routing, never to be spoken
    member_level: str  # 普通会员 / 银卡 / 金卡 / 钻石 — the customer's own word
    points: int
    lifecycle_stage: str
    total_spent: float
    timezone: str
    created_at: datetime
    # True once the customer's personal data was erased (crm_adapter.privacy):
    # the record then holds statistics only, its name is a placeholder.
    erased: bool = False


@dataclass(frozen=True)
class OrderItemView:
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: float


@dataclass(frozen=True)
class OrderView:
    order_number: str
    status: str
    status_label: str
    total: float
    masked_address: str
    created_at: datetime
    paid_at: Optional[datetime]
    shipped_at: Optional[datetime]
    delivered_at: Optional[datetime]
    carrier: Optional[str]
    tracking_number: Optional[str]
    logistics_note: Optional[str]
    items: tuple[OrderItemView, ...]
    # The shop's rules, evaluated once here so actions never re-implement them.
    can_cancel: bool
    can_change_address: bool
    can_return: bool
    return_deadline: Optional[date]  # last day a return can be requested
    # A return of this order still in progress ("R…"), which is why another is refused.
    open_return_number: Optional[str] = None


@dataclass(frozen=True)
class OrderChange:
    outcome: str  # done / already / not_allowed / not_found
    order: Optional[OrderView]


@dataclass(frozen=True)
class ReturnView:
    return_number: str
    order_number: str
    sku: Optional[str]
    product_name: Optional[str]
    reason: str
    status: str
    status_label: str
    refund_amount: float
    refund_eta: Optional[date]
    created_at: datetime


@dataclass(frozen=True)
class CouponView:
    code: str
    title: str
    amount: float
    min_spend: float
    expires_at: datetime
    expiring_soon: bool  # within 7 days: worth telling the customer


@dataclass(frozen=True)
class MembershipView:
    customer_id: int
    level: str
    points: int
    points_value_yuan: float  # 100 积分 = 1 元
    points_expiring: int
    points_expire_at: Optional[date]
    total_spent: float
    next_level: Optional[str]
    spend_to_next_level: Optional[float]
    coupons: tuple[CouponView, ...]


@dataclass(frozen=True)
class ProductView:
    sku: str
    name: str
    aliases: tuple[str, ...]
    category: str
    price: float
    repurchase_days: Optional[int]
    warranty_months: int
    description: str


@dataclass(frozen=True)
class ComplaintView:
    ticket_number: str
    category: str
    category_label: str
    description: str
    severity: str
    severity_label: str
    status: str
    status_label: str
    channel: str
    order_number: Optional[str]
    masked_contact_phone: str  # "" when none was left
    created_at: datetime
    sla_due_at: datetime
    resolved_at: Optional[datetime]


@dataclass(frozen=True)
class EscalationView:
    id: int
    customer_id: Optional[int]
    status: str
    status_label: str
    priority: str
    priority_label: str
    reason: str
    channel: str
    sender_id: str
    complaint_ticket: Optional[str]
    created_at: datetime
    callback: bool = False


@dataclass(frozen=True)
class TicketView:
    ticket_number: str
    problem: str
    problem_label: str
    description: str
    status: str
    status_label: str
    order_number: Optional[str]
    created_at: datetime


@dataclass(frozen=True)
class InvoiceRequestView:
    request_number: str
    order_number: str
    title: str
    tax_number: Optional[str]
    masked_email: str
    status: str
    status_label: str
    created_at: datetime


# -- analytics (crm_adapter.analytics) ----------------------------------------


@dataclass(frozen=True)
class CustomerProfileView:
    """The customer model for routing and the desk; tier and churn are never spoken to the customer."""

    customer_id: int
    tier: str  # core / potential / low
    tier_label: str  # 核心客户 / 潜力客户 / 低价值客户
    stage: str  # potential / new / growth / loyal / at_risk / churned
    stage_label: str
    recency_days: Optional[float]  # as of now
    frequency: int  # counted orders in the window
    monetary: float  # net spend in the window
    r_score: Optional[int]
    f_score: Optional[int]
    m_score: Optional[int]
    order_count: int
    last_order_at: Optional[datetime]
    clv_simple: float
    clv_discounted: float
    churn_risk: Optional[float]  # as of now, in [0, 1]
    churn_reasons: tuple[str, ...]  # Chinese, for staff
    cluster: Optional[int]
    computed_at: datetime  # when the stored metrics were computed (now, if on the fly)
    stored: bool  # False: computed on the fly, no refresh has covered this customer yet


@dataclass(frozen=True)
class TierClv:
    tier: str
    customers: int
    clv_mean: float
    clv_p50: float
    clv_p90: float
    clv_total: float


@dataclass(frozen=True)
class KpiReport:
    """The desk's figures for ``[start, end)``; rates are fractions (0.25 = 25 %), None when undefined."""

    start: datetime
    end: datetime
    retention_rate: Optional[float]
    repurchase_rate: Optional[float]
    churn_rate: Optional[float]
    clv_by_tier: tuple[TierClv, ...]
    csat_average: Optional[float]
    csat_satisfied_rate: Optional[float]
    csat_responses: int
    nps: Optional[float]  # -100 .. 100
    nps_responses: int
    complaint_rate_per_100_orders: Optional[float]
    complaints: int
    resolution_hours_mean: Optional[float]
    resolution_hours_median: Optional[float]
    cross_sell_rate: Optional[float]
    tier_upgrade_rate: Optional[float]
    aov: Optional[float]
    orders: int
    revenue: float
    active_customers: int
@dataclass(frozen=True)
class ConsentView:
    """The decision in force for one channel and purpose, or the default when
    nobody decided (``decided`` False; service yes, marketing no)."""

    customer_id: int
    channel: str
    purpose: str
    granted: bool
    decided: bool
    decided_on_channel: Optional[str]  # the channel the decision named ("all" or this one)
    source: Optional[str]
    recorded_by: Optional[str]
    decided_at: Optional[datetime]


@dataclass(frozen=True)
class QuietHoursView:
    customer_id: int
    start: time  # local wall-clock time in ``timezone``
    end: time  # may be earlier than start: the quiet hours cross midnight
    timezone: str
    is_default: bool  # the customer never chose; the shop's default applies


@dataclass(frozen=True)
class ErasureReport:
    customer_id: int
    erased_at: datetime
    identities_removed: int
    records_redacted: int  # rows whose free text or contact data was blanked
    stored_results_scrubbed: int  # idempotency results that held personal data


_VIEW_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        CustomerView,
        OrderItemView,
        OrderView,
        OrderChange,
        ReturnView,
        CouponView,
        MembershipView,
        ProductView,
        ComplaintView,
        EscalationView,
        TicketView,
        InvoiceRequestView,
        CustomerProfileView,
        TierClv,
        KpiReport,
        ConsentView,
        QuietHoursView,
        ErasureReport,
    )
}


def encode(value: Any) -> Any:
    """A view (or None, scalar, tuple of views) as JSON-compatible data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):  # before date: datetime is a date
        return {"__datetime__": value.isoformat()}
    if isinstance(value, date):
        return {"__date__": value.isoformat()}
    if isinstance(value, time):
        return {"__time__": value.isoformat()}
    if is_dataclass(value) and type(value).__name__ in _VIEW_TYPES:
        return {
            "__view__": type(value).__name__,
            "fields": {f.name: encode(getattr(value, f.name)) for f in fields(value)},
        }
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(data: Any) -> Any:
    """Inverse of `encode`; sequences come back as tuples, times in China time."""
    if isinstance(data, list):
        return tuple(decode(v) for v in data)
    if isinstance(data, dict):
        if "__datetime__" in data:
            parsed = datetime.fromisoformat(data["__datetime__"])
            return parsed.astimezone(CHINA_TZ) if parsed.tzinfo else parsed
        if "__date__" in data:
            return date.fromisoformat(data["__date__"])
        if "__time__" in data:
            return time.fromisoformat(data["__time__"])
        if "__view__" in data:
            cls = _VIEW_TYPES[data["__view__"]]
            return cls(**{name: decode(v) for name, v in data["fields"].items()})
        raise ValueError("unknown encoded object")
    return data


__all__ = [name for name in _VIEW_TYPES] + [
    "CHINA_TZ",
    "ORDER_STATUS_LABELS",
    "RETURN_STATUS_LABELS",
    "COMPLAINT_STATUS_LABELS",
    "COMPLAINT_CATEGORY_LABELS",
    "SEVERITY_LABELS",
    "ESCALATION_STATUS_LABELS",
    "PRIORITY_LABELS",
    "PAYMENT_PROBLEM_LABELS",
    "TICKET_STATUS_LABELS",
    "INVOICE_STATUS_LABELS",
    "encode",
    "decode",
]
