"""Recognise the customer and greet them by name.

A conversation whose channel identity is bound in the CRM (a WeChat openid,
a website visitor whose shop login token the channel verified) is verified from
its first message; anyone else is anonymous until they verify with an order number.
"""
from __future__ import annotations

import logging
from typing import Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import care as care_actions
from actions import common
from crm_adapter import errors
from crm_adapter.views import ComplaintView, CouponView

logger = logging.getLogger(__name__)


class ActionIdentify(Action):
    """Bind the conversation to its CRM customer, once per session.

    Rasa runs `action_validate_slot_mappings` after every user message, when
    the message's input channel is known (inside action_session_start it is
    not), and keeps both its slot events and its messages (a custom slot
    mapping action's messages are dropped).  A known customer is greeted by
    name (core customers hear that they come first), told about open
    complaints, and handed a win-back coupon when the CRM says they qualify;
    a CRM outage leaves the customer anonymous for now and is retried on the
    next message.
    """

    def name(self) -> str:
        return "action_validate_slot_mappings"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        external = _is_external(tracker)
        if tracker.get_slot("identity_checked") or tracker.get_slot("verified"):
            if tracker.get_slot("care_reply_pending") and not external:
                return _note_care_reply(tracker)
            return []
        try:
            identity = channel_identity(tracker)
            customer = common.crm().resolve_identity(*identity) if identity else None
            if customer is None:
                return [SlotSet("identity_checked", True)]
            if external:  # a scheduled message or the desk opened this session: no welcome
                return [SlotSet("identity_checked", True), *common.identity_slots(customer)]
            open_complaints = common.crm().complaints_for_customer(customer.id, open_only=True)
        except errors.CRMUnavailable:
            logger.warning("CRM unavailable while identifying a conversation")
            return []
        coupon = _retention_coupon(tracker, customer.id)
        dispatcher.utter_message(text=welcome(customer.name, customer.tier, open_complaints, coupon))
        care_events = _deferred_care(dispatcher, tracker, customer.id)
        return [SlotSet("identity_checked", True), *common.identity_slots(customer), *care_events]


# bot.channels.web puts the shop's verified uid here (the client cannot set it).
WEB_CHANNEL = "web"
WEB_UID_KEY = "kefu_web_uid"


def channel_identity(tracker: Tracker) -> Optional[tuple[str, str]]:
    """The (channel, external id) the CRM knows this conversation's customer by.

    Usually the input channel and the sender id (a WeChat openid, a REST
    sender).  On the website the sender id is a browser's random session id,
    so the identity is the shop uid the channel verified from the signed
    token, or none at all: an anonymous visitor must not be recognised by a
    session id they chose.
    """
    channel = common.channel_of(tracker)
    if channel != WEB_CHANNEL:
        return channel, tracker.sender_id
    user = next((e for e in reversed(tracker.events) if e.get("event") == "user"), None)
    uid = ((user or {}).get("metadata") or {}).get(WEB_UID_KEY)
    return (WEB_CHANNEL, uid) if isinstance(uid, str) and uid else None


def _is_external(tracker: Tracker) -> bool:
    """Whether the latest "message" was an injected EXTERNAL_* intent, not the customer."""
    intent = ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""
    return intent.startswith("EXTERNAL_")


def _deferred_care(dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: int) -> list[EventType]:
    """Remember where the customer chats now (crm_adapter.care) and say the care messages
    that could not reach them earlier (actions.care)."""
    try:
        care = common.crm().care
        care.note_conversation(customer_id, common.channel_of(tracker), tracker.sender_id)
        return care_actions.say(dispatcher, care.take_deferred(customer_id, common.channel_of(tracker),
                                                               tracker.sender_id))
    except (errors.CRMUnavailable, errors.InvalidInput):
        logger.warning("deferred care messages not checked for this conversation")
        return []


def _note_care_reply(tracker: Tracker) -> list[EventType]:
    """The customer wrote after a care message: that counts as a reply (campaign metrics)."""
    try:
        common.crm().care.note_reply_to(tracker.get_slot("care_send_id"))
    except (errors.CRMUnavailable, errors.InvalidInput):
        logger.warning("care reply not recorded")
    return [SlotSet("care_reply_pending", False)]


def _retention_coupon(tracker: Tracker, customer_id: int) -> Optional[CouponView]:
    """A win-back coupon when the CRM says this customer qualifies (crm_adapter.retention)."""
    try:
        return common.crm().retention_offer(customer_id, common.channel_of(tracker),
                                            common.idempotency_key(tracker, "retention"))
    except (errors.CRMUnavailable, errors.InvalidInput, errors.NotFound):
        logger.warning("no retention offer check for this conversation")
        return None


def welcome(name: str, tier: str, open_complaints: list[ComplaintView], coupon: Optional[CouponView]) -> str:
    """The first words to a known customer: by name; core customers are told they come
    first (without naming a tier); open complaints are mentioned; a win-back coupon
    is handed over with its terms."""
    text = f"{name}您好，欢迎回来！"
    if tier == "core":
        text += "您的问题我会优先处理，需要人工时也会为您优先安排。"
    if open_complaints:
        numbers = "、".join(c.ticket_number for c in open_complaints[:3])
        text += (f"您有 {len(open_complaints)} 个处理中的投诉（{numbers}），"
                 "想了解进度可以直接问我。")
    if coupon is not None:
        terms = f"满{coupon.min_spend:g}减{coupon.amount:g}" if coupon.min_spend else f"立减{coupon.amount:g}元"
        text += (f"好久不见，送您一张{coupon.title}（{terms}，"
                 f"{coupon.expires_at:%m月%d日}前有效），已放进您的账户。")
    return text


class ActionGreet(Action):
    def name(self) -> str:
        return "action_greet"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        name = tracker.get_slot("customer_name") if tracker.get_slot("verified") else None
        if name and _bot_spoke_this_session(tracker):
            dispatcher.utter_message(response="utter_how_can_help")
        elif name:
            dispatcher.utter_message(response="utter_greet_known", customer_name=name)
        else:
            dispatcher.utter_message(response="utter_greet")
        return []


class ActionStopForm(Action):
    """Leave the current form on the customer's word and clear what it collected."""

    def name(self) -> str:
        return "action_stop_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_form_stopped")
        return common.reset_flow_slots(tracker)


def _bot_spoke_this_session(tracker: Tracker) -> bool:
    """Whether the session start already greeted (so we do not greet twice)."""
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "bot":
            return True
    return False
