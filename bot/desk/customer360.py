"""The customer 360 side panel, assembled from `crm_adapter` reads.

Each part is read on its own so one failing read (a deleted customer, a
remote directory timing out) leaves the others on the panel.  Staff see what
`crm_adapter` gives them: addresses and phones arrive masked from there.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from crm_adapter import CRM
from crm_adapter.errors import CRMError
from crm_adapter.models import CONTACT_CHANNELS

log = logging.getLogger("kefu.desk.customer360")

CHANNEL_LABELS = {"wechat": "微信", "web": "网站", "sms": "短信", "email": "邮件", "app": "App推送"}
PURPOSE_LABELS = {"service": "服务通知", "marketing": "营销推广"}
UNKNOWN = "未识别客户"


def _part(name: str, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except CRMError as exc:
        log.info("customer 360: %s unavailable (%s)", name, type(exc).__name__)
        return None


def _time(value: Any) -> Optional[str]:
    return value.isoformat() if value is not None else None


def panel(crm: CRM, customer_id: Optional[int], customer_name: Optional[str]) -> dict[str, Any]:
    """A JSON-ready panel; ``known`` False for anonymous chats (shown as 未识别客户)."""
    if customer_id is None:
        return {"known": False, "label": UNKNOWN}
    profile = _part("profile", lambda: crm.customer_profile(customer_id))
    orders = _part("orders", lambda: crm.recent_orders(customer_id, limit=5))
    complaints = _part("complaints", lambda: crm.complaints_for_customer(customer_id, open_only=True))
    consents = []
    for channel in CONTACT_CHANNELS:
        for purpose in ("service", "marketing"):
            view = _part("consent", lambda: crm.consent_status(customer_id, channel, purpose))
            if view is not None:
                consents.append({"channel": CHANNEL_LABELS.get(channel, channel),
                                 "purpose": PURPOSE_LABELS[purpose], "granted": view.granted,
                                 "decided": view.decided})
    return {
        "known": True,
        "customer_id": customer_id,
        "name": customer_name or f"客户 #{customer_id}",
        "profile": None if profile is None else {
            "tier_label": profile.tier_label, "stage_label": profile.stage_label,
            "clv": round(profile.clv_discounted, 2), "clv_simple": round(profile.clv_simple, 2),
            "churn_risk": None if profile.churn_risk is None else round(profile.churn_risk * 100),
            "churn_reasons": list(profile.churn_reasons), "order_count": profile.order_count,
            "last_order_at": _time(profile.last_order_at)},
        "orders": None if orders is None else [
            {"order_number": o.order_number, "status_label": o.status_label, "total": o.total,
             "created_at": _time(o.created_at), "products": "、".join(f"{i.name}×{i.quantity}" for i in o.items)} for o in orders],
        "complaints": None if complaints is None else [
            {"ticket_number": c.ticket_number, "category_label": c.category_label,
             "severity_label": c.severity_label, "status_label": c.status_label,
             "description": c.description, "sla_due_at": _time(c.sla_due_at)} for c in complaints],
        "consents": consents,
    }

