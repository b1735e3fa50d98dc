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
    """First miss: ask to rephrase.  Second miss in a row: hand over to a person."""

    def name(self) -> str:
        return "action_handle_fallback"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        # The message is reverted (as Rasa's own fallback does) so the dialogue
        # continues from where it was, e.g. inside a form, instead of looping.
        if _previous_user_turn_was_fallback(tracker):
            dispatcher.utter_message(response="utter_fallback_escalate")
            return await escalate(dispatcher, tracker, reason="repeated_fallback") + [
                UserUtteranceReverted()]
        dispatcher.utter_message(response="utter_default")
        return [UserUtteranceReverted()]


def _previous_user_turn_was_fallback(tracker: Tracker) -> bool:
    """Whether the user message before the latest one also ended in a fallback."""
    user_turns = [e for e in tracker.events if e.get("event") == "user"]
    if len(user_turns) < 2:
        return False
    previous = user_turns[-2]
    intent = ((previous.get("parse_data") or {}).get("intent") or {}).get("name")
    if intent == "nlu_fallback":
        return True
    # A core fallback (policy unsure) shows up as our action after that turn.
    index = tracker.events.index(previous)
    later = tracker.events[index + 1:]
    for event in later:
        if event.get("event") == "user":
            break
        if event.get("event") == "action" and event.get("name") == "action_handle_fallback":
            return True
    return False
