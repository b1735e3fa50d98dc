"""action_escalate_upset, the fallback threshold per tier, and a complaint
filed in anger — against a real temporary CRM."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from actions.handoff import ActionHandleFallback
from actions.tickets import ActionSubmitComplaint
from actions.upset import ActionEscalateUpset
from crm_adapter import CRM
from crm_adapter.models import Escalation
from tests.actions.test_actions import make_tracker, run, verified
from tests.actions.test_actions import _use  # noqa: F401  - points actions at the test CRM

ANGRY = "气死我了，你们这什么破服务！"


@pytest.fixture(autouse=True)
def _default_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_ESCALATE_UPSET_TURNS", raising=False)
    monkeypatch.delenv("KEFU_ESCALATE_AFTER_FALLBACKS", raising=False)


def user(text: str, angry: bool = False, intent: str = "inform") -> dict[str, Any]:
    label = "strong_negative" if angry else "other"
    return {"event": "user", "text": text,
            "parse_data": {"intent": {"name": intent}, "sentiment": {"label": label, "score": 0.9}}}


def escalations(crm: CRM, sender: str) -> list[Any]:
    with crm.engine.connect() as conn:
        return conn.execute(select(Escalation).where(Escalation.sender_id == sender)).all()


def test_escalate_upset_apologises_records_and_sets_the_slot(crm: CRM) -> None:
    tracker = make_tracker(verified(1, customer_tier="core"), text=ANGRY, sender="upset-1",
                           events=[user(ANGRY, angry=True)])
    events, messages = run(ActionEscalateUpset(), tracker)
    responses = [m["response"] for m in messages]
    # The apology comes first; what follows is handoff.escalate()'s own word.
    assert responses[0] == "utter_escalate_upset" and responses[1].startswith("utter_escalated")
    rows = escalations(crm, "upset-1")
    assert [r.reason for r in rows] == ["negative_sentiment"]
    slot_values = [e["value"] for e in events if e.get("event") == "slot"
                   and e.get("name") == "escalation_id"]
    assert len(slot_values) == 1 and str(rows[0].id) in slot_values[0]


def fallbacks(n: int) -> list[dict[str, Any]]:
    return [user("???", intent="nlu_fallback") for _ in range(n)]


@pytest.mark.parametrize("setting, tier, turns, escalates", [
    (None, "low", 2, True),
    (None, "core", 1, False),
    ("core:1", "core", 1, True),
    ("core:3", "core", 2, False),
    ("core:3", "core", 3, True),
    ("core:3", "low", 2, True),        # low keeps its default
    ("low:banana", "low", 2, True),    # a bad value keeps the default
])
def test_fallback_escalates_after_the_tiers_count(monkeypatch, setting, tier, turns,
                                                   escalates) -> None:
    if setting:
        monkeypatch.setenv("KEFU_ESCALATE_AFTER_FALLBACKS", setting)
    tracker = make_tracker({"customer_tier": tier}, text="???", intent="nlu_fallback",
                           events=[user("我的订单到哪了")] + fallbacks(turns))
    _, messages = run(ActionHandleFallback(), tracker)
    responses = [m["response"] for m in messages]
    if escalates:
        assert responses[0] == "utter_fallback_escalate" and responses[1].startswith("utter_escalated")
    else:
        assert responses == ["utter_default"]


def test_an_understood_turn_breaks_the_fallback_run() -> None:
    events = fallbacks(1) + [user("我的订单到哪了")] + fallbacks(1)
    tracker = make_tracker({"customer_tier": "low"}, text="???", intent="nlu_fallback",
                           events=events)
    _, messages = run(ActionHandleFallback(), tracker)
    assert [m["response"] for m in messages] == ["utter_default"]


def complaint(crm: CRM, sender: str, turns: list[dict[str, Any]], tier: str = "potential",
              description: str = "耳机左边没声音", category: str = "other") -> list[str]:
    slots = verified(2, customer_tier=tier, complaint_category=category,
                     complaint_description=description)
    tracker = make_tracker(slots, text=description, sender=sender, events=turns)
    _, messages = run(ActionSubmitComplaint(), tracker)
    return [m["response"] for m in messages]


def test_angry_complaint_escalates_with_the_ticket(crm: CRM) -> None:
    turns = [user("我要投诉", angry=False), user("垃圾东西，气死了", angry=True),
             user("你们这群骗子", angry=True)]
    responses = complaint(crm, "upset-c1", turns)
    assert responses[:2] == ["utter_complaint_created", "utter_escalate_upset"]
    assert responses[2].startswith("utter_escalated")
    rows = escalations(crm, "upset-c1")
    assert [r.reason for r in rows] == ["negative_sentiment"] and rows[0].complaint_id


def test_calm_complaint_or_not_upset_enough_does_not_escalate(crm: CRM) -> None:
    calm = [user("我要投诉"), user("耳机左边没声音")]
    assert complaint(crm, "upset-c2", calm) == ["utter_complaint_created"]
    once = [user("我要投诉"), user("气死了", angry=True)]  # potential needs two
    assert complaint(crm, "upset-c3", once) == ["utter_complaint_created"]
    assert escalations(crm, "upset-c2") == [] and escalations(crm, "upset-c3") == []


def test_high_severity_complaint_escalates_once_for_severity(crm: CRM) -> None:
    turns = [user("你们这破充电宝冒烟了，气死了", angry=True)] * 2
    responses = complaint(crm, "upset-c4", turns, tier="core", category="quality",
                          description="充电宝冒烟了")
    assert responses[:2] == ["utter_complaint_created", "utter_complaint_escalated"]
    assert "utter_escalate_upset" not in responses
    assert [r.reason for r in escalations(crm, "upset-c4")] == ["high_severity_complaint"]
