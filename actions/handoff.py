"""Escalation to a human: on request, after repeated misunderstanding, or for
serious complaints.  The desk that picks escalations up arrives in a later
issue; until then the customer is told honestly what happens next.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from actions import common
from crm_adapter.policy import escalation_threshold

logger = logging.getLogger(__name__)

AGENT_HOURS = (9, 21)  # human agents work 9:00-21:00 every day


def agents_available(now: Optional[datetime] = None) -> bool:
    hour = (now or datetime.now()).hour
    return AGENT_HOURS[0] <= hour < AGENT_HOURS[1]


async def escalate(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str,
                   complaint_ticket: Optional[str] = None) -> list[EventType]:
    """Record an escalation in the CRM and tell the customer what happens next."""
    escalation = common.crm().create_escalation(
        common.customer_id_of(tracker), common.channel_of(tracker), tracker.sender_id,
        reason, common.idempotency_key(tracker, f"escalation:{reason}"),
        complaint_ticket=complaint_ticket,
    )
    if agents_available():
        when = "人工客服会尽快在这里回复您，请稍候。"
    else:
        when = "现在是非工作时间（人工客服 9:00-21:00），客服上班后会第一时间在这里回复您。"
    dispatcher.utter_message(response="utter_escalated", escalation_id=f"E{escalation.id:06d}",
                             when=when)
    logger.info("Escalated conversation (reason=%s, priority=%s)", reason, escalation.priority)
    return []


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
