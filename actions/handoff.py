"""Escalation to a human: on request, after repeated misunderstanding, for
serious complaints, and (actions/upset.py) for strongly upset customers.

While the desk is open the chat joins the desk's queue and the conversation
is paused (Rasa's ``pause`` event), so the bot stays quiet and every message
the customer writes goes to the agent.  Out of hours the bot does not pause:
it records a callback request and keeps helping with what it can.  The desk
(bot/desk) claims, replies and resolves; resolving resumes the conversation
and triggers ``EXTERNAL_handoff_resolved``, answered here with the CSAT
question.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from actions import common
from crm_adapter import servicedesk
from crm_adapter.policy import escalation_threshold

logger = logging.getLogger(__name__)


async def escalate(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str,
                   complaint_ticket: Optional[str] = None) -> list[EventType]:
    """Queue the chat for a person (and pause the bot), or promise a callback out of hours."""
    crm = common.crm()
    desk_open = servicedesk.desk_open(datetime.now(timezone.utc))
    escalation = crm.create_escalation(
        common.customer_id_of(tracker), common.channel_of(tracker), tracker.sender_id,
        reason, common.idempotency_key(tracker, f"escalation:{reason}"),
        complaint_ticket=complaint_ticket, callback=not desk_open,
    )
    number = f"E{escalation.id:06d}"
    logger.info("Escalated conversation (reason=%s, priority=%s, desk_open=%s)",
                reason, escalation.priority, desk_open)
    events: list[EventType] = [SlotSet("escalation_id", str(escalation.id))]
    if not desk_open:
        phone = _callback_phone(tracker)
        how = f"致电 {phone} 联系您" if phone else "在这里回复您"
        dispatcher.utter_message(response="utter_escalated_callback", escalation_id=number,
                                 hours=servicedesk.hours_label(), how=how)
        return events
    place = crm.desk.queue_place(escalation.id)
    if place.status == "open":  # an agent already has this chat
        dispatcher.utter_message(response="utter_escalated_already")
    elif place.ahead:
        dispatcher.utter_message(response="utter_escalated", escalation_id=number,
                                 place=f"您前面还有 {place.ahead} 位，预计等待约 {place.expected_wait_minutes} 分钟。")
    else:
        dispatcher.utter_message(response="utter_escalated", escalation_id=number,
                                 place=f"您是下一位，预计等待约 {place.expected_wait_minutes} 分钟。")
    return events + [ConversationPaused()]


def _callback_phone(tracker: Tracker) -> Optional[str]:
    """The verified customer's phone as it may be said (masked), or None."""
    customer_id = common.customer_id_of(tracker)
    if customer_id is None:
        return None
    return common.crm().get_customer(customer_id).masked_phone or None


class ActionEscalate(Action):
    def name(self) -> str:
        return "action_escalate"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        return await escalate(dispatcher, tracker, reason="request_human")


class ActionHandleFallback(Action):
    """A miss: ask to rephrase.  Enough misses in a row for the customer's tier
    (``KEFU_ESCALATE_AFTER_FALLBACKS``, two by default): hand over to a person."""

    def name(self) -> str:
        return "action_handle_fallback"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        # The message is reverted (as Rasa's own fallback does) so the dialogue
        # continues from where it was, e.g. inside a form, instead of looping.
        threshold = escalation_threshold("fallback", tracker.get_slot("customer_tier"))
        if consecutive_fallbacks(tracker) >= threshold:
            dispatcher.utter_message(response="utter_fallback_escalate")
            return await escalate(dispatcher, tracker, reason="repeated_fallback") + [
                UserUtteranceReverted()]
        dispatcher.utter_message(response="utter_default")
        return [UserUtteranceReverted()]


class ActionHandoffResolved(Action):
    """An agent resolved the chat (the desk triggered EXTERNAL_handoff_resolved): ask for CSAT."""

    def name(self) -> str:
        return "action_handoff_resolved"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        escalation_id = common.entity_value(tracker, "escalation_id") or tracker.get_slot("escalation_id")
        dispatcher.utter_message(response="utter_handoff_resolved")
        dispatcher.utter_message(response="utter_ask_rating")
        return [SlotSet("escalation_id", None),
                SlotSet("csat_escalation_id", str(escalation_id) if escalation_id else None)]


def consecutive_fallbacks(tracker: Tracker) -> int:
    """User turns in a row, ending with the latest, that ended in a fallback.

    The latest turn counts (this action runs because of it).  An earlier turn
    counts when NLU said ``nlu_fallback`` or when this action ran after it (a
    core fallback: the policy was unsure).  Counting stops at the session start.
    """
    count = 0
    followed_by_fallback = True  # the latest turn: we are handling its fallback
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "session_started" or (kind == "action" and event.get("name") == "action_session_start"):
            break
        if kind == "action" and event.get("name") == "action_handle_fallback":
            followed_by_fallback = True
        elif kind == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if not (followed_by_fallback or intent == "nlu_fallback"):
                break
            count += 1
            followed_by_fallback = False
    return max(count, 1)
