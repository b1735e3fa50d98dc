"""Escalation for a strongly upset customer (predicted by
bot.policies.upset.UpsetCustomerPolicy): apologise first, then hand over."""
from __future__ import annotations

from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import common, handoff
from crm_adapter.policy import escalation_threshold

REASON = "negative_sentiment"
STRONG_NEGATIVE = "strong_negative"


class ActionEscalateUpset(Action):
    def name(self) -> str:
        return "action_escalate_upset"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[EventType]:
        dispatcher.utter_message(response="utter_escalate_upset")
        return await handoff.escalate(dispatcher, tracker, reason=REASON)


def upset_turns_this_session(tracker: Tracker) -> int:
    """Strongly negative customer messages in the current session (not only in a row)."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") == "session_started" or (
                event.get("event") == "action" and event.get("name") == "action_session_start"):
            break
        if event.get("event") != "user":
            continue
        sentiment = (event.get("parse_data") or {}).get("sentiment") or {}
        if isinstance(sentiment, dict) and sentiment.get("label") == STRONG_NEGATIVE:
            count += 1
    return count


def upset_enough(tracker: Tracker, tier: Optional[str] = None) -> bool:
    """Whether the customer was strongly negative at least their tier's threshold."""
    tier = tier if tier is not None else tracker.get_slot("customer_tier")
    return upset_turns_this_session(tracker) >= escalation_threshold("upset", tier)
