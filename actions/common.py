"""What every action needs: the CRM, who the customer is, and safe failure.

One place decides how an action reaches the CRM, how a write's idempotency
key is made from the incoming message, and how a CRM outage turns into an
honest apology, so the action modules stay thin.
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Any, Awaitable, Callable, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from crm_adapter import CRM, errors
from crm_adapter.views import CustomerView

logger = logging.getLogger(__name__)

_crm: Optional[CRM] = None

ORDER_NUMBER_RE = re.compile(r"(?<!\d)(\d{12})(?!\d)")
LAST4_RE = re.compile(r"(?<!\d)(\d{4})(?!\d)")

# Slots a finished flow clears so the next request starts clean.  Identity
# slots (customer_id, verified, ...) are kept for the rest of the session.
FLOW_SLOTS = (
    "order_number", "phone_last4", "new_address", "confirm", "return_reason",
    "profile_field", "profile_value", "payment_problem", "invoice_title",
    "tax_number", "invoice_email", "complaint_category", "complaint_description",
    "contact_phone", "rating", "flow_blocked",
)


def crm() -> CRM:
    """The process-wide CRM client (created on first use from the environment)."""
    global _crm
    if _crm is None:
        _crm = CRM.from_env()
    return _crm


def use_crm(instance: Optional[CRM]) -> None:
    """Point actions at another CRM (tests, or an embedding process)."""
    global _crm
    _crm = instance


def idempotency_key(tracker: Tracker, what: str) -> str:
    """Key a write to the customer message that caused it.

    Rasa re-runs actions when a channel retries a message; the same message id
    then yields the same key and the CRM returns the first result instead of
    writing twice.
    """
    message = tracker.latest_message or {}
    message_id = message.get("message_id")
    if not message_id:
        # Fall back to the position of the latest user event in the tracker.
        user_events = [e for e in tracker.events if e.get("event") == "user"]
        message_id = f"n{len(user_events)}-{user_events[-1].get('timestamp') if user_events else 0}"
    return f"{tracker.sender_id}:{message_id}:{what}"


def channel_of(tracker: Tracker) -> str:
    return tracker.get_latest_input_channel() or "unknown"


def customer_id_of(tracker: Tracker) -> Optional[int]:
    """The customer this conversation is verified as, or None."""
    if not tracker.get_slot("verified"):
        return None
    value = tracker.get_slot("customer_id")
    return int(value) if value not in (None, "") else None


def flow_customer(dispatcher: CollectingDispatcher, tracker: Tracker) -> Optional[int]:
    """The verified customer a finished form may act for, or None.

    None when the form was stopped (the customer was already answered) or when
    verification is locked after too many failures (said again here, so a
    locked customer who asks again is not met with silence).
    """
    if tracker.get_slot("flow_blocked"):
        return None
    customer_id = customer_id_of(tracker)
    if customer_id is None:
        dispatcher.utter_message(response="utter_verify_locked")
    return customer_id


def identity_slots(customer: CustomerView) -> list[EventType]:
    """Slots that mark the conversation as verified for this customer."""
    return [
        SlotSet("customer_id", str(customer.id)),
        SlotSet("customer_name", customer.name),
        SlotSet("customer_tier", customer.tier),
        SlotSet("verified", True),
        SlotSet("verify_attempts", 0),
    ]


def reset_flow_slots(tracker: Tracker) -> list[EventType]:
    """Clear the flow slots that hold something.

    Only those: a slot already empty needs no event, and every stored event
    is read back, replayed and sent to this server again on each later turn
    of the session.  Clearing all 16 unconditionally made a finished flow's
    turn ~25 events instead of ~9.
    """
    return [SlotSet(name, None) for name in FLOW_SLOTS if tracker.get_slot(name) is not None]


#: "改成 / 换成 / 送到 / 设为 …": what follows is the new value of what is being changed.
_NEW_VALUE_LEAD = re.compile(r"(?:改成|改为|改到|换成|换为|换到|设成|设为|送到|寄到)[:：]?\s*(.+)$")


def new_value_after_lead(text: str) -> Optional[str]:
    """The words after 改成, 换成, 送到…, in which a customer gives a new value in passing; None without them."""
    lead = _NEW_VALUE_LEAD.search(text)
    return lead.group(1) if lead else None


def latest_text(tracker: Tracker) -> str:
    """What the customer last wrote ("" when nothing)."""
    return str((tracker.latest_message or {}).get("text") or "")


def entity_value(tracker: Tracker, entity: str) -> Optional[str]:
    return next(tracker.get_latest_entity_values(entity), None)


def first_order_number(text: Optional[str]) -> Optional[str]:
    match = ORDER_NUMBER_RE.search(text or "")
    return match.group(1) if match else None


ActionRun = Callable[..., Awaitable[list[EventType]]]


def apologise_when_crm_down(run: ActionRun) -> ActionRun:
    """Turn a CRM outage into one clear apology and a clean slate.

    The CRM writes in single transactions, so an outage leaves nothing half
    written; the customer is told so and the flow's slots are cleared so the
    next attempt starts over.
    """

    @functools.wraps(run)
    async def wrapper(self: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: dict) -> list[EventType]:
        try:
            return await run(self, dispatcher, tracker, domain)
        except errors.CRMUnavailable:
            logger.warning("CRM unavailable during %s", self.name())
            dispatcher.utter_message(response="utter_crm_unavailable")
            return reset_flow_slots(tracker)

    return wrapper
