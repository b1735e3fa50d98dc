"""`bot.tracker_copy.copy` gives exactly Rasa's copy, on every training and test conversation."""
from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop,
                                     AllSlotsReset, BotUttered, EntitiesAdded, FollowupAction, LoopInterrupted,
                                     Restarted, SessionStarted, SlotSet, UserUttered, UserUtteranceReverted)
from rasa.shared.core.trackers import DialogueStateTracker

from bot import tracker_copy

tracker_copy.install()
STOCK = tracker_copy._STOCK[0]


def _fields(tracker: DialogueStateTracker) -> dict[str, Any]:
    return {k: v for k, v in vars(tracker).items() if k != tracker_copy._REPLICA}


def assert_same_copy(ours: DialogueStateTracker, stock: DialogueStateTracker,
                     original: DialogueStateTracker) -> None:
    """Every field equal to stock's, events shared as stock shares them, mutable parts the copy's own."""
    mine, theirs = _fields(ours), _fields(stock)
    assert set(mine) == set(theirs)
    assert len(ours.events) == len(stock.events) and all(a is b for a, b in zip(ours.events, stock.events))
    assert ours.events.maxlen == stock.events.maxlen
    assert list(ours.slots) == list(stock.slots)
    for name, slot in ours.slots.items():
        assert type(slot) is type(stock.slots[name]) and vars(slot) == vars(stock.slots[name]), name
        assert slot is not original.slots.get(name)
    for key in set(mine) - {"events", "slots"}:
        assert mine[key] == theirs[key], key
    for name in ("latest_message", "latest_bot_utterance"):
        shared = any(getattr(stock, name) is event for event in stock.events)
        assert shared == any(getattr(ours, name) is event for event in ours.events), name
    assert ours.active_loop is None or ours.active_loop is not original.active_loop
    assert ours.current_state() == stock.current_state()


def _copy_and_check(tracker: DialogueStateTracker) -> DialogueStateTracker:
    ours = tracker.copy()
    assert_same_copy(ours, STOCK(tracker), tracker)
    return ours


def _processor_meddling(tracker: DialogueStateTracker, copy: DialogueStateTracker, step: int) -> None:
    """What Rasa's processor and actions do to trackers outside the original's events."""
    if step % 3 == 0:
        tracker.clear_followup_action()  # the processor, after running a follow-up action
    if step % 4 == 1:  # actions run on the copy and change it, in place too
        if isinstance(copy.latest_action, dict):
            copy.latest_action["action_name"] = "meddled"
        if copy.active_loop is not None:
            copy.active_loop.rejected = True
        copy.slots.get("requested_slot") and copy.slots["requested_slot"].reset()
        if not any(copy.latest_message is event for event in copy.events):  # `_reset`'s placeholder
            copy.latest_message.entities.append({"entity": "meddled", "value": "x"})
        if not any(copy.latest_bot_utterance is event for event in copy.events):
            copy.latest_bot_utterance.data["meddled"] = True
        copy.update(SlotSet("requested_slot", "order_number"))
        copy.update(ActionExecuted("action_listen"))


def test_every_copy_of_every_training_conversation_is_rasas(training) -> None:
    domain, trackers = training
    compared = 0
    for trained in trackers:
        tracker = DialogueStateTracker(trained.sender_id, domain.slots, is_rule_tracker=trained.is_rule_tracker)
        for step, event in enumerate(trained.events):
            tracker.update(event, domain)
            copy = _copy_and_check(tracker)
            _processor_meddling(tracker, copy, step)
            compared += 1
    assert compared > 500  # every event of every rule, story and test story


def test_a_history_that_was_rewritten_gets_stocks_copy(training) -> None:
    domain, trackers = training
    longest = list(max(trackers, key=lambda t: len(t.events)).events)
    tracker = DialogueStateTracker.from_events("r", longest, slots=domain.slots)
    _copy_and_check(tracker)
    tracker.events = deque(list(tracker.events)[:-3])  # shorter
    _copy_and_check(tracker)
    _copy_and_check(tracker)
    events = list(tracker.events)
    events[-1] = ActionExecuted(ACTION_LISTEN_NAME)  # same length, another event last
    tracker.events = deque(events)
    _copy_and_check(tracker)
    for event in longest[-3:]:
        tracker.update(event)
        _copy_and_check(tracker)


def test_a_bounded_history_gets_stocks_copy(training) -> None:
    domain, trackers = training
    events = list(max(trackers, key=lambda t: len(t.events)).events)
    tracker = DialogueStateTracker("b", domain.slots, max_event_history=5)
    for event in events:
        tracker.update(event)
        _copy_and_check(tracker)


def test_a_bounded_history_that_drops_what_a_replica_saw(training) -> None:
    """The same event object appended again: the newest event is where the last one was."""
    domain, _ = training
    tracker = DialogueStateTracker("b", domain.slots, max_event_history=3)
    listen = ActionExecuted(ACTION_LISTEN_NAME)
    for event in (SlotSet("verified", True), BotUttered("您好"), listen):
        tracker.update(event)
    _copy_and_check(tracker)
    tracker.update(listen)  # drops the SlotSet: "verified" is unset in a replay
    _copy_and_check(tracker)


def _unusual_events(domain: Domain) -> list:
    form = sorted(domain.form_names)[0]
    return [UserUtteranceReverted(), ActionReverted(), Restarted(), SessionStarted(), AllSlotsReset(),
            ActiveLoop(form), ActionExecuted(form), LoopInterrupted(True), ActionExecutionRejected(form),
            ActiveLoop(None), ActionExecuted(ACTION_LISTEN_NAME), FollowupAction("action_listen"),
            EntitiesAdded([{"entity": "city", "value": "上海", "start": 0, "end": 2}]),
            UserUttered("在吗", {"name": "greet", "confidence": 1.0}), BotUttered("您好"),
            SlotSet("verified", True), SlotSet("order_number", "260101000003")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_histories_with_meddling_copy_like_rasa(training, data) -> None:
    """Reverts, restarts, resets, loops and the processor's direct changes, anywhere."""
    domain, trackers = training
    events = list(data.draw(st.sampled_from(trackers)).events)
    for _ in range(data.draw(st.integers(1, 8))):
        events.insert(data.draw(st.integers(0, len(events))), data.draw(st.sampled_from(_unusual_events(domain))))
    tracker = DialogueStateTracker("h", domain.slots)
    copy_every = data.draw(st.integers(1, 4))
    for step, event in enumerate(events):
        tracker.update(event)
        if step % copy_every == 0:
            copy = _copy_and_check(tracker)
            _processor_meddling(tracker, copy, data.draw(st.integers(0, 11)))
    _copy_and_check(tracker)


def test_install_replaces_copy_once() -> None:
    tracker_copy.install()
    assert DialogueStateTracker.copy is tracker_copy.copy
    assert tracker_copy._STOCK == [STOCK] and STOCK is not tracker_copy.copy


def test_the_quick_shallow_copy_is_copy_copy(training) -> None:
    import copy

    domain, _ = training
    for slot in domain.slots:
        quick, stock = tracker_copy._shallow_copy(slot), copy.copy(slot)
        assert type(quick) is type(stock) and vars(quick) == vars(stock) and quick is not slot

    class Custom:
        def __init__(self) -> None:
            self.copied = False

        def __copy__(self) -> "Custom":
            made = Custom()
            made.copied = True
            return made

    class Slotted:
        __slots__ = ("value",)

    assert tracker_copy._shallow_copy(Custom()).copied  # its own __copy__ is honoured
    slotted = Slotted()
    slotted.value = 7
    assert tracker_copy._shallow_copy(slotted).value == 7
