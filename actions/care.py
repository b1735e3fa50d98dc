"""Proactive care in the conversation: say a scheduled message, understand the answer.

The scheduler (bot/scheduler) pushes a message by triggering
``EXTERNAL_care_message`` with the send's id; `ActionDeliverCare` fetches the
rendered text from the CRM and says it -- once: the CRM marks it delivered
and refuses a second time, so a retried trigger says nothing. A complaint
follow-up leaves ``care_followup`` set so that the customer's 「解决了」 /
「没解决」 is read as the answer to it (`ActionCareFollowup`).
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from crm_adapter import errors
from crm_adapter.care import CareMessage

logger = logging.getLogger(__name__)


def care_slots(message: CareMessage) -> list[EventType]:
    """Slots that put the customer's reply in the context of this message."""
    followup = bool(message.context.get("ticket_number"))
    return [SlotSet("care_send_id", str(message.send_id)), SlotSet("care_campaign", message.campaign),
            SlotSet("care_followup", followup), SlotSet("care_reply_pending", True)]


def say(dispatcher: CollectingDispatcher, messages: list[CareMessage]) -> list[EventType]:
    """Say care messages in order; the slots follow the last one."""
    for message in messages:
        dispatcher.utter_message(text=message.text)
    return care_slots(messages[-1]) if messages else []


class ActionDeliverCare(Action):
    def name(self) -> str:
        return "action_deliver_care"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        send_id: Optional[Any] = common.entity_value(tracker, "care_send_id")
        try:
            message = common.crm().care.mark_delivered(send_id, tracker.sender_id)
        except (errors.CRMUnavailable, errors.InvalidInput) as exc:
            # Not delivered: the scheduler sees "sent" without "delivered" and the
            # message is not lost; staying silent beats an apology nobody asked for.
            logger.warning("care message not said: %s", type(exc).__name__)
            return []
        if message is None:
            return []  # said before (a retried trigger), or nothing to say
        return say(dispatcher, [message])


class ActionCareFollowup(Action):
    """「解决了」 -> noted, and how satisfied were you? 「没解决」 -> the complaint is reopened."""

    def name(self) -> str:
        return "action_care_followup"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        solved = (tracker.latest_message.get("intent") or {}).get("name") != "deny"  # affirm or thanks
        send_id = tracker.get_slot("care_send_id")
        try:
            ticket = common.crm().care.record_followup(send_id, tracker.sender_id, solved,
                                                       common.idempotency_key(tracker, "care_followup"))
        except errors.InvalidInput:
            ticket = None
        done = [SlotSet("care_followup", False)]
        if solved:
            dispatcher.utter_message(response="utter_care_followup_solved")
            dispatcher.utter_message(response="utter_ask_rating")
            return done
        if ticket:
            dispatcher.utter_message(response="utter_care_followup_reopened", ticket_number=ticket)
        else:
            dispatcher.utter_message(response="utter_care_followup_sorry")
        return done
