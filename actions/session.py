"""Session start: recognise the customer and greet them by name.

A conversation whose channel identity is bound in the CRM (a WeChat openid,
a signed website login) is verified from its first message; anyone else is
anonymous until they verify with an order number.
"""
from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from crm_adapter import errors

logger = logging.getLogger(__name__)


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        try:
            customer = common.crm().resolve_identity(common.channel_of(tracker), tracker.sender_id)
            if customer is not None:
                events += common.identity_slots(customer)
                open_complaints = common.crm().complaints_for_customer(customer.id, open_only=True)
                greeting = f"{customer.name}您好，欢迎回来！"
                if open_complaints:
                    numbers = "、".join(c.ticket_number for c in open_complaints[:3])
                    greeting += (f"您有 {len(open_complaints)} 个处理中的投诉（{numbers}），"
                                 "想了解进度可以直接问我。")
                dispatcher.utter_message(text=greeting)
        except errors.CRMUnavailable:
            # Still serve the customer anonymously; personal flows will apologise.
            logger.warning("CRM unavailable at session start; continuing anonymously")
        events.append(ActionExecuted("action_listen"))
        return events


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
