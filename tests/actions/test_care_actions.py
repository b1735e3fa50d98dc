"""Care in the conversation (actions/care.py, the hook in actions/session.py) against a real CRM."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import common
from actions.care import ActionCareFollowup, ActionDeliverCare
from actions.session import ActionIdentify
from crm_adapter import CRM
from crm_adapter.models import CareSend, Complaint

ZHANG = 1


def tracker(slots: dict[str, Any], intent: str = "greet", text: str = "你好", sender: str = "demo-zhangwei",
            entities: Optional[list] = None, message_id: str = "m1") -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0}, "entities": entities or [],
              "message_id": message_id}
    events = [{"event": "user", "text": text, "parse_data": latest, "input_channel": "rest"}]
    return Tracker(sender, slots, latest, events, False, None, {}, "action_listen")


def run(action: Any, t: Tracker) -> tuple[list[dict], list[dict]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, {"slots": {}}))
    return events, dispatcher.messages


@pytest.fixture(autouse=True)
def _use(crm: CRM):
    common.use_crm(crm)
    yield
    common.use_crm(None)


def _send(crm: CRM, status: str, text: str, context: Optional[dict] = None, campaign: str = "birthday") -> int:
    now = datetime.utcnow()
    with Session(crm.engine, future=True) as session, session.begin():
        row = CareSend(campaign=campaign, customer_id=ZHANG, occasion=f"o-{now.timestamp()}", variant="A",
                       purpose="service", status=status, text=text, context=context or {}, attempts=0,
                       next_attempt_at=now, expires_at=now + timedelta(days=3), created_at=now, updated_at=now)
        session.add(row)
        session.flush()
        return int(row.id)


def _slots(events: list[dict]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def test_a_pushed_message_is_said_once_with_its_context(crm: CRM) -> None:
    sid = _send(crm, "sending", "张伟，祝您生日快乐！")
    external = tracker({}, intent="EXTERNAL_care_message", text="EXTERNAL: EXTERNAL_care_message",
                       entities=[{"entity": "care_send_id", "value": str(sid)}])
    events, messages = run(ActionDeliverCare(), external)
    assert [m["text"] for m in messages] == ["张伟，祝您生日快乐！"]
    assert _slots(events) == {"care_send_id": str(sid), "care_campaign": "birthday", "care_followup": False,
                              "care_reply_pending": True}
    assert crm.care.get(sid).status == "delivered"
    assert run(ActionDeliverCare(), external) == ([], [])  # a retried trigger says nothing


def test_not_solved_reopens_the_complaint_and_says_so(crm: CRM) -> None:
    complaint = crm.create_complaint(ZHANG, "quality", "杯子有裂缝", "rest", "demo-zhangwei", "t:complaint")
    with Session(crm.engine, future=True) as session, session.begin():
        row = session.execute(select(Complaint).where(Complaint.ticket_number == complaint.ticket_number)).scalar_one()
        row.status, row.resolved_at = "resolved", datetime.utcnow()
    sid = _send(crm, "sending", "您反映的问题解决了吗？", {"ticket_number": complaint.ticket_number},
                campaign="complaint_followup")
    events, _ = run(ActionDeliverCare(), tracker({}, intent="EXTERNAL_care_message",
                                                 entities=[{"entity": "care_send_id", "value": str(sid)}]))
    assert _slots(events)["care_followup"] is True
    events, messages = run(ActionCareFollowup(), tracker({"care_send_id": str(sid), "care_followup": True},
                                                         intent="deny", text="没解决", message_id="m2"))
    assert [m["response"] for m in messages] == ["utter_care_followup_reopened"]
    assert messages[0]["ticket_number"] == complaint.ticket_number
    assert _slots(events) == {"care_followup": False}
    reopened = crm.get_complaint(ZHANG, complaint.ticket_number)
    assert reopened.status == "open"
    assert crm.care.get(sid).outcome == "unsolved"


def test_solved_asks_for_a_rating(crm: CRM) -> None:
    sid = _send(crm, "sending", "您反映的问题解决了吗？", {"ticket_number": "TS202601010001"})
    run(ActionDeliverCare(), tracker({}, intent="EXTERNAL_care_message",
                                     entities=[{"entity": "care_send_id", "value": str(sid)}]))
    _, messages = run(ActionCareFollowup(), tracker({"care_send_id": str(sid), "care_followup": True},
                                                    intent="affirm", text="解决了", message_id="m3"))
    assert [m["response"] for m in messages] == ["utter_care_followup_solved", "utter_ask_rating"]
    assert crm.care.get(sid).outcome == "solved"


def test_deferred_messages_are_said_after_the_welcome_of_the_next_chat(crm: CRM) -> None:
    sid = _send(crm, "deferred", "张伟，端午节快乐！")
    events, messages = run(ActionIdentify(), tracker({}))
    texts = [m["text"] for m in messages]
    assert texts[0].startswith("张伟您好") and texts[1:] == ["张伟，端午节快乐！"]
    assert _slots(events)["care_send_id"] == str(sid)
    assert crm.care.get(sid).status == "delivered"
    _, again = run(ActionIdentify(), tracker({}, sender="demo-zhangwei", message_id="m9"))
    assert "端午节" not in str(again)  # said once


def test_an_external_intent_binds_silently_and_a_reply_is_counted(crm: CRM) -> None:
    _send(crm, "deferred", "张伟，中秋快乐！")
    events, messages = run(ActionIdentify(), tracker({}, intent="EXTERNAL_care_message", text="EXTERNAL"))
    assert messages == [] and _slots(events)["identity_checked"] is True  # no welcome for a push
    sid = _send(crm, "sending", "生日快乐")
    run(ActionDeliverCare(), tracker({}, intent="EXTERNAL_care_message",
                                     entities=[{"entity": "care_send_id", "value": str(sid)}]))
    events, messages = run(ActionIdentify(), tracker({"identity_checked": True, "care_reply_pending": True,
                                                      "care_send_id": str(sid)}, text="谢谢"))
    assert messages == [] and _slots(events) == {"care_reply_pending": False}
    assert crm.care.get(sid).replied_at is not None
