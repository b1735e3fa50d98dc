"""Short replies said to no question of ours: 好的, 不用了, a bare value.

Outside a form they get a short prompt ("还有其他可以帮您的吗？").  Inside one
they come through Rasa's unhappy path (the form could not use them), and the
form asks its question again right after: a prompt of their own read, seen by
hand, 「好的。还有其他可以帮您的吗？」 followed by 「请告诉我您的订单号」, as if
the conversation had ended and restarted in one breath.
"""
from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common

#: What each short reply gets outside a form.
_PROMPTS = {"affirm": "utter_anything_else", "deny": "utter_anything_else", "inform": "utter_how_can_help"}


class ActionAcknowledge(Action):
    def name(self) -> str:
        return "action_acknowledge"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        if (tracker.active_loop or {}).get("name"):
            # The form's question follows.  Digits where an order number is asked
            # are a wrong number, and saying so beats asking again unexplained
            # (seen by hand: 「0000」 after a failed check got the question alone).
            digits = any(ch.isdigit() for ch in common.latest_text(tracker))
            if tracker.get_slot("requested_slot") == "order_number" and digits:
                dispatcher.utter_message(response="utter_invalid_order_number")
            return []
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name") or "inform"
        dispatcher.utter_message(response=_PROMPTS.get(intent, "utter_how_can_help"))
        return []
