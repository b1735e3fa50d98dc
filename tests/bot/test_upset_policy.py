"""UpsetCustomerPolicy on hand-built Rasa trackers with the real domain."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, ActiveLoop, Event, SessionStarted, SlotSet,
                                     UserUttered)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.policies.upset import ACTION_ESCALATE_UPSET, UpsetCustomerPolicy, upset_streak
from bot.settings import ROOT

ANGRY = "气死我了，你们这什么破服务！"
CALM = "我的订单到哪了"


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(ROOT / "domain.yml")


@pytest.fixture()
def policy(tmp_path: Path) -> UpsetCustomerPolicy:
    return UpsetCustomerPolicy.create(
        {**UpsetCustomerPolicy.get_default_config()}, LocalModelStorage(tmp_path),
        Resource("upset"), ExecutionContext(GraphSchema({}), "test"))


@pytest.fixture(autouse=True)
def _default_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_ESCALATE_UPSET_TURNS", raising=False)


def said(text: str, angry: bool, intent: str = "chitchat") -> list[Event]:
    label = "strong_negative" if angry else "other"
    parse_data = {"intent": {"name": intent, "confidence": 0.9}, "entities": [],
                  "sentiment": {"label": label, "score": 0.95 if angry else 0.05}}
    return [UserUttered(text, {"name": intent, "confidence": 0.9}, [], parse_data)]


def bot_answered() -> list[Event]:
    return [ActionExecuted("utter_how_can_help"), ActionExecuted(ACTION_LISTEN_NAME)]


def tracker(domain: Domain, *turns: list[Event], tier: Optional[str] = None,
            slots: Optional[list[Event]] = None) -> DialogueStateTracker:
    events: list[Event] = [ActionExecuted("action_session_start"), SessionStarted(),
                           ActionExecuted(ACTION_LISTEN_NAME)]
    if tier:
        events.append(SlotSet("customer_tier", tier))
    events += slots or []
    for turn in turns:
        events += turn
    return DialogueStateTracker.from_events("upset-test", events, slots=domain.slots)


def predicted(policy: UpsetCustomerPolicy, tracker_: DialogueStateTracker,
              domain: Domain) -> Optional[str]:
    prediction = policy.predict_action_probabilities(tracker_, domain)
    if max(prediction.probabilities) == 0.0:
        return None
    assert max(prediction.probabilities) == 1.0
    assert prediction.policy_priority == 7
    return domain.action_names_or_texts[prediction.max_confidence_index]


def test_core_customer_escalates_on_first_angry_message(policy, domain) -> None:
    assert predicted(policy, tracker(domain, said(ANGRY, True), tier="core"),
                     domain) == ACTION_ESCALATE_UPSET


def test_low_tier_escalates_on_second_angry_message_in_a_row(policy, domain) -> None:
    first = tracker(domain, said(ANGRY, True), tier="low")
    assert predicted(policy, first, domain) is None
    second = tracker(domain, said(ANGRY, True), bot_answered(), said("滚，垃圾", True), tier="low")
    assert predicted(policy, second, domain) == ACTION_ESCALATE_UPSET


def test_unknown_customer_counts_as_unknown_tier(policy, domain) -> None:
    assert predicted(policy, tracker(domain, said(ANGRY, True)), domain) is None
    assert predicted(policy, tracker(domain, said(ANGRY, True), bot_answered(),
                                     said(ANGRY, True)), domain) == ACTION_ESCALATE_UPSET


def test_a_calm_message_resets_the_streak(policy, domain) -> None:
    t = tracker(domain, said(ANGRY, True), bot_answered(), said(CALM, False), bot_answered(),
                said(ANGRY, True), tier="potential")
    assert upset_streak(t) == 1
    assert predicted(policy, t, domain) is None


def test_calm_message_never_escalates_even_for_core(policy, domain) -> None:
    assert predicted(policy, tracker(domain, said(CALM, False), tier="core"), domain) is None


def test_no_prediction_inside_an_active_form(policy, domain) -> None:
    t = tracker(domain, said("我要投诉", False), [ActionExecuted("complaint_form"),
                                               ActiveLoop("complaint_form"),
                                               ActionExecuted(ACTION_LISTEN_NAME)],
                said(ANGRY, True), tier="core")
    assert t.active_loop_name == "complaint_form"
    assert predicted(policy, t, domain) is None


def test_no_prediction_when_already_escalated(policy, domain) -> None:
    t = tracker(domain, said(ANGRY, True), tier="core", slots=[SlotSet("escalation_id", "E000001")])
    assert predicted(policy, t, domain) is None


def test_listens_after_escalating_and_counts_afresh_later(policy, domain) -> None:
    t = tracker(domain, said(ANGRY, True), [ActionExecuted(ACTION_ESCALATE_UPSET)], tier="core")
    assert predicted(policy, t, domain) == ACTION_LISTEN_NAME
    later = tracker(domain, said(ANGRY, True), [ActionExecuted(ACTION_ESCALATE_UPSET),
                                                ActionExecuted(ACTION_LISTEN_NAME)],
                    said(ANGRY, True), tier="low")
    assert upset_streak(later) == 1


def test_abstains_when_the_bot_is_mid_turn(policy, domain) -> None:
    t = tracker(domain, said(ANGRY, True), [ActionExecuted("utter_how_can_help")], tier="core")
    assert predicted(policy, t, domain) is None


def test_previous_session_and_scheduler_intents_do_not_count(policy, domain) -> None:
    old_session = said(ANGRY, True) + bot_answered()
    t = tracker(domain, old_session, [ActionExecuted("action_session_start"), SessionStarted(),
                                      ActionExecuted(ACTION_LISTEN_NAME)],
                said(ANGRY, True), tier="low")
    assert upset_streak(t) == 1
    care = said("", False, intent="EXTERNAL_birthday") + bot_answered()
    t = tracker(domain, said(ANGRY, True), bot_answered(), care, said(ANGRY, True), tier="low")
    assert predicted(policy, t, domain) == ACTION_ESCALATE_UPSET


def test_message_without_sentiment_is_not_anger(policy, domain) -> None:
    plain = [UserUttered(ANGRY, {"name": "chitchat", "confidence": 0.9}, [], {})]
    assert predicted(policy, tracker(domain, plain, tier="core"), domain) is None


def test_environment_overrides_thresholds(policy, domain, monkeypatch) -> None:
    monkeypatch.setenv("KEFU_ESCALATE_UPSET_TURNS", "core:3,low:1")
    assert predicted(policy, tracker(domain, said(ANGRY, True), tier="low"),
                     domain) == ACTION_ESCALATE_UPSET
    two = tracker(domain, said(ANGRY, True), bot_answered(), said(ANGRY, True), tier="core")
    assert predicted(policy, two, domain) is None
    three = tracker(domain, said(ANGRY, True), bot_answered(), said(ANGRY, True), bot_answered(),
                    said(ANGRY, True), tier="core")
    assert predicted(policy, three, domain) == ACTION_ESCALATE_UPSET
    # potential was not mentioned: keeps its default of 2
    assert predicted(policy, tracker(domain, said(ANGRY, True), tier="potential"), domain) is None


@pytest.mark.parametrize("value", ["core:zero", "core:0,potential:-1", "vip:1,core", "core:99"])
def test_bad_environment_values_fall_back_to_defaults_with_a_warning(
        policy, domain, monkeypatch, caplog, value) -> None:
    monkeypatch.setenv("KEFU_ESCALATE_UPSET_TURNS", value)
    with caplog.at_level(logging.WARNING, logger="crm_adapter.policy"):
        assert predicted(policy, tracker(domain, said(ANGRY, True), tier="core"),
                         domain) == ACTION_ESCALATE_UPSET
        assert predicted(policy, tracker(domain, said(ANGRY, True), tier="low"), domain) is None
    assert any("KEFU_ESCALATE_UPSET_TURNS" in r.getMessage() for r in caplog.records)


def test_trained_policy_persists_and_loads(tmp_path: Path, domain) -> None:
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    trained = UpsetCustomerPolicy.create({"priority": 7}, storage, Resource("upset"), context)
    resource = trained.train([], domain)
    loaded = UpsetCustomerPolicy.load({"priority": 7}, storage, resource, context)
    assert predicted(loaded, tracker(domain, said(ANGRY, True), tier="core"),
                     domain) == ACTION_ESCALATE_UPSET
