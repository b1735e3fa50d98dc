"""The contract that lets the Rasa server skip `action_validate_slot_mappings` (bot/action_calls.py).

Whenever `identity_settled` says so, Kefu's `ActionIdentify` must return no
events and say nothing, for any customer, channel, message and other slots,
and whether or not the CRM is reachable: that is what the skip assumes.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import common
from actions.session import ActionIdentify
from bot.action_calls import IDENTITY_SLOTS, identity_settled
from crm_adapter import CRM

_truthy = st.sampled_from([True, "true", 1])
_falsy = st.sampled_from([None, False, 0, ""])
_any = st.one_of(_truthy, _falsy)
_other_slots = st.dictionaries(
    st.sampled_from(["order_number", "customer_id", "care_send_id", "escalation_id", "customer_tier",
                     "complaint_category", "requested_slot"]),
    st.one_of(st.none(), st.text(max_size=12), st.integers()), max_size=4)


def _tracker(slots: dict[str, Any], sender: str, channel: str, intent: str, text: str) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0}, "entities": [], "message_id": "m1"}
    events = [{"event": "user", "text": text, "parse_data": latest, "input_channel": channel}]
    return Tracker(sender, slots, latest, events, False, None, {}, "action_listen")


@pytest.fixture(autouse=True)
def _use(crm: CRM):
    common.use_crm(crm)
    yield
    common.use_crm(None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(checked=_any, verified=_any, pending=_any, others=_other_slots,
       sender=st.sampled_from(["demo-zhangwei", "stranger-1", "wx-openid-x"]),
       channel=st.sampled_from(["rest", "wechat", "web", "socketio"]),
       intent=st.sampled_from(["greet", "affirm", "EXTERNAL_care_message", "complain"]),
       text=st.sampled_from(["你好", "谢谢", "EXTERNAL", "我要投诉"]))
def test_settled_identity_means_the_action_does_nothing(checked, verified, pending, others, sender, channel,
                                                       intent, text) -> None:
    slots = {**others, "identity_checked": checked, "verified": verified, "care_reply_pending": pending}
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionIdentify().run(dispatcher, _tracker(slots, sender, channel, intent, text),
                                              {"slots": {}}))
    if identity_settled(slots):
        assert events == [] and dispatcher.messages == []


def test_the_contract_is_not_vacuous(crm: CRM) -> None:
    """Unsettled conversations do make the action act, so the skip must not hide them."""
    dispatcher = CollectingDispatcher()
    fresh = _tracker({}, "demo-zhangwei", "rest", "greet", "你好")
    events = asyncio.run(ActionIdentify().run(dispatcher, fresh, {"slots": {}}))
    assert not identity_settled({})
    assert any(e.get("name") == "identity_checked" for e in events) and dispatcher.messages
    assert set(IDENTITY_SLOTS) == {"identity_checked", "verified", "care_reply_pending"}
