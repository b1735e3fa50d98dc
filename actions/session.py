"""Recognise the customer and greet them by name.

A conversation whose channel identity is bound in the CRM (a WeChat openid,
a signed website login) is verified from its first message; anyone else is
anonymous until they verify with an order number.
"""
from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from crm_adapter import errors

logger = logging.getLogger(__name__)


class ActionIdentify(Action):
    """Bind the conversation to its CRM customer, once per session.

    Rasa runs `action_validate_slot_mappings` after every user message, when
    the message's input channel is known (inside action_session_start it is
    not), and keeps both its slot events and its messages (a custom slot
    mapping action's messages are dropped).  A known customer is greeted by
    name and told about open complaints; a CRM outage leaves the customer
    anonymous for now and is retried on the next message.
    """

    def name(self) -> str:
        return "action_validate_slot_mappings"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        if tracker.get_slot("identity_checked") or tracker.get_slot("verified"):
            return []
        try:
            customer = common.crm().resolve_identity(common.channel_of(tracker), tracker.sender_id)
            if customer is None:
                return [SlotSet("identity_checked", True)]
            open_complaints = common.crm().complaints_for_customer(customer.id, open_only=True)
        except errors.CRMUnavailable:
            logger.warning("CRM unavailable while identifying a conversation")
            return []
        greeting = f"{customer.name}您好，欢迎回来！"
        if open_complaints:
            numbers = "、".join(c.ticket_number for c in open_complaints[:3])
            greeting += (f"您有 {len(open_complaints)} 个处理中的投诉（{numbers}），"
                         "想了解进度可以直接问我。")
        dispatcher.utter_message(text=greeting)
        return [SlotSet("identity_checked", True), *common.identity_slots(customer)]


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
        return common.reset_flow_slots()


def _bot_spoke_this_session(tracker: Tracker) -> bool:
    """Whether the session start already greeted (so we do not greet twice)."""
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "bot":
            return True
    return False
