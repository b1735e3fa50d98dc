"""The Rasa start-up replacements accept and reject exactly what stock Rasa does."""
from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event, SlotSet, UserUttered
from rasa.shared.utils.common import all_subclasses

from bot import rasa_server

RESPONSES: list[Any] = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "verified", "value": True}],
     "responses": [{"text": "您好，订单已发货 📦", "buttons": []}]},
    {"events": [{"event": "active_loop", "name": None}, {"event": "followup", "name": "action_listen"}]},
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"events": [{"name": "verified"}]},          # an event without its type
    {"responses": "not a list"},
    {"responses": [1, 2]},
    [],                                            # not an object at all
    {"events": [{"event": "user", "text": "我的快递到哪了",
                 "parse_data": {"intent": {"name": "query_order", "confidence": 0.98},
                                "entities": [{"entity": "order_id", "value": "260101000001",
                                              "start": 0, "end": 12}]}},
                {"event": "bot", "text": "好的", "data": {}, "metadata": {}},
                {"event": "action", "name": "action_listen", "policy": None, "confidence": 1.0},
                {"event": "session_started", "timestamp": 1.5}]},
    {"events": [{"event": "user", "text": 12}]},                      # wrong type inside a branch
    {"events": [{"event": "user", "parse_data": {"entities": [{"entity": "x"}]}}]},  # entity without value
    {"events": [{"event": "slot", "name": "verified"}]},              # a branch's required key missing
    {"events": [{"event": ["slot"], "name": "verified", "value": 1}]},  # type name not a string
    {"events": [{"event": "slot", "name": "a", "value": 1}, {"event": "bot", "timestamp": "noon"}]},
    {"events": [{"event": "active_loop", "name": "complaint_form"}], "responses": [{"text": "好"}]},
]


def _stock_accepts(result: Any) -> bool:
    try:
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
        return True
    except jsonschema.ValidationError:
        return False


@pytest.mark.parametrize("result", RESPONSES)
def test_action_result_validation_matches_stock(result: Any) -> None:
    action = RemoteAction("action_query_order", None)
    if _stock_accepts(result):
        assert rasa_server.validate_action_result(action, result) is True
    else:
        with pytest.raises(jsonschema.ValidationError) as caught:
            rasa_server.validate_action_result(action, result)
        assert "Failed to validate Action server response" in caught.value.message


@pytest.mark.parametrize("result", RESPONSES)
def test_the_fast_path_accepts_only_what_stock_accepts_and_takes_every_valid_response(result: Any) -> None:
    # Every valid response here is decided by the per-event-type check alone, so
    # the full oneOf is only ever walked for invalid ones (to word the error).
    assert rasa_server._quickly_valid(result) is _stock_accepts(result)


def test_both_outcomes_are_covered() -> None:
    outcomes = {_stock_accepts(r) for r in RESPONSES}
    assert outcomes == {True, False}


def test_event_lookup_matches_stock_for_every_event_type() -> None:
    rasa_server.install()
    stock = rasa_server._STOCK_RESOLVE[0]
    for cls in all_subclasses(Event):
        name = getattr(cls, "type_name", None)
        if isinstance(name, str):
            assert Event.resolve_by_type(name) is stock(name)
            assert Event.resolve_by_type(name) is stock(name)  # second time from memory


def test_event_lookup_keeps_stock_answers_for_unknown_names() -> None:
    rasa_server.install()
    with pytest.raises(ValueError):
        Event.resolve_by_type("no_such_event")
    assert Event.resolve_by_type("no_such_event", default=SlotSet) is SlotSet
    assert Event.resolve_by_type("topic") is None
    assert "no_such_event" not in rasa_server._EVENT_TYPES


def test_events_still_deserialise_after_install() -> None:
    rasa_server.install()
    rasa_server.install()  # idempotent: the stock lookup is kept once
    assert len(rasa_server._STOCK_RESOLVE) == 1
    events = [UserUttered("我的快递到哪了", {"name": "query_order"}), SlotSet("verified", True)]
    restored = [Event.from_parameters(e.as_dict()) for e in events]
    assert restored == events


def test_install_applies_every_replacement_before_a_model_is_loaded() -> None:
    """Graph nodes take their component's method when a model loads, so install() must patch the classes."""
    from rasa.core.actions.action import RemoteAction
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.nlu.extractors.spacy_entity_extractor import SpacyEntityExtractor
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot import debug_log_copies, graph_runner, tracker_copy, tracker_states
    from bot.nlu import spacy_doc_reuse

    rasa_server.install()
    assert RemoteAction.run is rasa_server.run_remote_action
    assert DaskGraphRunner.run is graph_runner.run
    assert SpacyEntityExtractor.process is spacy_doc_reuse.process
    assert DialogueStateTracker.past_states is tracker_states.past_states
    assert DialogueStateTracker.copy is tracker_copy.copy
    import rasa.core.policies.memoization
    import rasa.core.processor

    assert isinstance(rasa.core.processor.copy, debug_log_copies.DebugOnlyCopy)
    assert isinstance(rasa.core.policies.memoization.copy, debug_log_copies.DebugOnlyCopy)
