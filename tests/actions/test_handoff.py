"""Handoff actions against a real temporary CRM: exact events and messages.

In desk hours the chat is queued and paused; out of hours a callback is
recorded and the bot keeps going; after an agent resolves, the CSAT answer
lands on that escalation.
"""
from __future__ import annotations

import pytest
from rasa_sdk.events import ConversationPaused, SlotSet

from actions import common
from actions.account import ActionRateService
from actions.handoff import ActionEscalate, ActionHandoffResolved
from crm_adapter import CRM
from tests.actions.test_actions import make_tracker, run, verified


@pytest.fixture(autouse=True)
def _use(crm: CRM):
    common.use_crm(crm)
    yield
    common.use_crm(None)


def test_in_desk_hours_the_chat_is_queued_and_paused(crm: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "00:00-24:00")
    events, messages = run(ActionEscalate(), make_tracker({}, text="转人工", intent="request_human"))
    escalation = crm.desk.conversations()[0]
    assert events == [SlotSet("escalation_id", str(escalation.id)), ConversationPaused()]
    assert [m["response"] for m in messages] == ["utter_escalated"]
    assert messages[0]["escalation_id"] == f"E{escalation.id:06d}"
    assert "您是下一位" in messages[0]["place"] and not escalation.callback


def test_the_second_in_line_hears_how_many_are_ahead(crm: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "00:00-24:00")
    run(ActionEscalate(), make_tracker({}, text="转人工", intent="request_human", sender="first"))
    _, messages = run(ActionEscalate(), make_tracker({}, text="人工", intent="request_human", sender="second"))
    assert "您前面还有 1 位" in messages[0]["place"]


def test_out_of_hours_records_a_callback_and_does_not_pause(crm: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    # A window that excludes every moment of the day but one minute at 04:00 China time.
    monkeypatch.setenv("KEFU_DESK_HOURS", "04:00-04:01")
    from datetime import datetime, timezone

    from crm_adapter import servicedesk
    if servicedesk.desk_open(datetime.now(timezone.utc)):
        pytest.skip("ran during the one open minute")
    events, messages = run(ActionEscalate(), make_tracker(verified(2), text="转人工", intent="request_human"))
    escalation = crm.desk.conversations()[0]
    assert events == [SlotSet("escalation_id", str(escalation.id))]  # no pause: the bot keeps helping
    assert [m["response"] for m in messages] == ["utter_escalated_callback"]
    assert messages[0]["hours"] == "04:00-04:01"
    assert messages[0]["how"].startswith("致电 ") and "*" in messages[0]["how"]  # masked
    assert escalation.callback and escalation.customer_id == 2


def test_resolution_asks_for_csat_and_the_answer_lands_on_the_escalation(
        crm: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "00:00-24:00")
    run(ActionEscalate(), make_tracker({}, text="转人工", intent="request_human", sender="rated"))
    eid = crm.desk.conversations()[0].id
    crm.desk.create_staff("alice", "小艾", "agent", "a long password")
    crm.desk.claim(eid, "alice")
    crm.desk.resolve(eid, "alice")
    resolved = make_tracker({"escalation_id": str(eid)}, intent="EXTERNAL_handoff_resolved", sender="rated")
    resolved.latest_message["entities"] = [{"entity": "escalation_id", "value": str(eid)}]
    events, messages = run(ActionHandoffResolved(), resolved)
    assert events == [SlotSet("escalation_id", None), SlotSet("csat_escalation_id", str(eid))]
    assert [m["response"] for m in messages] == ["utter_handoff_resolved", "utter_ask_rating"]
    answer = make_tracker({"csat_escalation_id": str(eid)}, text="5分", intent="rate_service", sender="rated",
                          message_id="m2")
    answer.latest_message["entities"] = [{"entity": "rating", "value": "5"}]
    events, messages = run(ActionRateService(), answer)
    assert events == [SlotSet("rating", None), SlotSet("csat_escalation_id", None)]
    assert crm.desk.conversation(eid).csat_score == 5
