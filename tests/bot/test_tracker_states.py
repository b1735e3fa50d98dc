"""`bot.tracker_states.past_states` gives exactly Rasa's states, on every training and test conversation."""
from __future__ import annotations

import json
import tarfile
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted
from rasa.shared.core.trackers import DialogueStateTracker

from bot import tracker_states
from tests.conftest import MODEL

tracker_states.install()
STOCK = tracker_states._STOCK[0]


def _rule_only_data(domain: Domain) -> dict[str, Any]:
    """What the trained RulePolicy hands the other policies (all forms, if no model)."""
    if MODEL.exists():
        with tarfile.open(MODEL) as archive:
            for member in archive.getmembers():
                if member.name.endswith("rule_policy.json"):
                    lookup = json.load(archive.extractfile(member)).get("lookup") or {}
                    if "rule_only_loops" in lookup:
                        return {"rule_only_slots": lookup["rule_only_slots"],
                                "rule_only_loops": lookup["rule_only_loops"]}
    return {"rule_only_slots": [], "rule_only_loops": list(domain.form_names)}


def _hiding(events: list, every: int) -> list:
    """The events as a live conversation records them when rules not in any
    story predicted some actions (`hide_rule_turn`): every `every`-th one."""
    out, count = [], 0
    for event in events:
        if isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN_NAME:
            count += 1
            if count % every == 0:
                event = ActionExecuted(event.action_name, event.policy, event.confidence, event.timestamp,
                                       event.metadata, action_text=event.action_text, hide_rule_turn=True)
        out.append(event)
    return out


def test_every_state_of_every_training_conversation_is_rasas(training) -> None:
    domain, trackers = training
    rule_only = _rule_only_data(domain)
    assert rule_only["rule_only_loops"], "the check should cover rule-only loops"
    compared = hidden = 0
    variants = [(t, events) for t in trackers
                for events in (list(t.events), _hiding(list(t.events), 1), _hiding(list(t.events), 2))]
    for trained, events in variants:
        tracker = DialogueStateTracker(trained.sender_id, domain.slots, is_rule_tracker=trained.is_rule_tracker)
        for event in events:
            tracker.update(event, domain)
            for ignore in (False, True):
                for data in (rule_only, None):
                    ours = tracker.past_states(domain, ignore_rule_only_turns=ignore, rule_only_data=data)
                    stock = STOCK(tracker, domain, ignore_rule_only_turns=ignore, rule_only_data=data)
                    assert ours == stock, (trained.sender_id, event)
                    compared += 1
            hidden += len(STOCK(tracker, domain)) != len(STOCK(tracker, domain, ignore_rule_only_turns=True))
    assert compared > 5000 and hidden > 100  # rule-only turns were among them


def test_callers_get_their_own_copies(training) -> None:
    domain, trackers = training
    tracker = DialogueStateTracker.from_events("c", list(trackers[0].events), slots=domain.slots)
    first = tracker.past_states(domain)
    first[-1].clear()
    for state in first[:-1]:
        for sub_state in state.values():
            sub_state.clear()
    assert tracker.past_states(domain) == STOCK(tracker, domain)


def test_a_new_event_is_seen(training) -> None:
    domain, trackers = training
    longest = max(trackers, key=lambda t: len(t.events))
    events = list(longest.events)
    tracker = DialogueStateTracker.from_events("c", events[: len(events) // 2], slots=domain.slots)
    before = tracker.past_states(domain)
    for event in events[len(events) // 2:]:
        tracker.update(event, domain)
    assert tracker.past_states(domain) == STOCK(tracker, domain) != before


def _special_events(domain: Domain) -> list:
    """Events that make Rasa rewrite the applied history (the walk must start over)."""
    from rasa.shared.core.events import ActionReverted, ActiveLoop, Restarted, SessionStarted, UserUtteranceReverted

    form = sorted(domain.form_names)[0]
    return [UserUtteranceReverted(), ActionReverted(), Restarted(), SessionStarted(), ActiveLoop(form),
            ActionExecuted(form), ActiveLoop(None), ActionExecuted(ACTION_LISTEN_NAME)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rewritten_histories_are_walked_again(training, data) -> None:
    """Reverts, restarts and a form's repeated execution, anywhere: still Rasa's states after every event."""
    domain, trackers = training
    rule_only = _rule_only_data(domain)
    story = list(data.draw(st.sampled_from(trackers)).events)
    events = list(story)
    for _ in range(data.draw(st.integers(1, 6))):
        events.insert(data.draw(st.integers(0, len(events))), data.draw(st.sampled_from(_special_events(domain))))
    tracker = DialogueStateTracker("h", domain.slots)
    for event in events:
        tracker.update(event, domain)
        for ignore in (False, True):
            ours = tracker.past_states(domain, ignore_rule_only_turns=ignore, rule_only_data=rule_only)
            assert ours == STOCK(tracker, domain, ignore_rule_only_turns=ignore, rule_only_data=rule_only)
