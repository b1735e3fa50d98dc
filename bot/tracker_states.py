"""One walk over a conversation's history per prediction, instead of one per policy.

Why: to predict each next action, Rasa's policies ask the tracker for its
dialogue states (`DialogueStateTracker.past_states`), and Rasa rebuilds them
every time by replaying the whole session into a fresh tracker: the
MemoizationPolicy asks once (hiding rule-only turns), the RulePolicy twice
(text, then intent; same states), and again after every action of the turn.
Under the REST load that was a sixth of the Rasa process's CPU
(BENCHMARKS.md, "REST round trips").

`past_states` here makes one walk that yields both variants (with and without
the rule-only turns, exactly as `Domain.states_for_tracker_history` computes
each), keeps it on the tracker object, and hands every caller its own copy,
because Rasa's featurizer edits the last state it gets.  When the tracker's
history has grown since, the walk goes on from where it stopped (`_Walk`):
a turn's later predictions, and, since the tracker store keeps a saved
tracker for the sender's next turn, later turns, replay only the new events.
Training is unaffected: the
trackers Rasa trains on (`TrackerWithCachedStates`) have their own
`past_states`.  `tests/bot/test_tracker_states.py` compares every state of
every training story and rule, at every point of the conversation, with
Rasa's own computation.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import ActionExecuted

_CACHE_ATTRIBUTE = "_kefu_past_states"
_STOCK: List[Any] = []


def _copy(state: State) -> State:
    """States hold sub-dicts of immutable values; two levels is a full copy."""
    return {kind: dict(sub_state) for kind, sub_state in state.items()}


def _rule_only_key(rule_only_data: Optional[Dict[Text, Any]]) -> Tuple:
    if not rule_only_data:
        return ()
    return tuple(sorted((key, tuple(value) if isinstance(value, (list, tuple)) else value)
                        for key, value in rule_only_data.items()))


class _Walk:
    """A walk over a tracker's applied events that can be continued.

    The states before each action depend only on the events applied up to
    it, so when the tracker's applied events extend the ones walked (the same
    event objects, more of them: the usual case, as a turn appends events),
    the walk goes on from where it stopped instead of replaying the whole
    session again.  When they do not (a form's repeated execution, a revert,
    a restart rewrite the applied history), a new walk starts.
    """

    def __init__(self, tracker: Any, domain: Domain, omit_unset_slots: bool,
                 rule_only_data: Optional[Dict[Text, Any]]) -> None:
        self.domain, self.omit_unset_slots, self.rule_only_data = domain, omit_unset_slots, rule_only_data
        self.replay = tracker.init_copy()
        self.applied: List[Any] = []
        self.all_states: List[State] = []
        self.ml_states: List[State] = []
        self.last_ml_action_sub_state: Any = None
        self.turn_was_hidden = False

    def continues(self, applied: List[Any]) -> bool:
        walked = self.applied
        if len(applied) < len(walked):
            return False
        return all(a is b for a, b in zip(walked, applied))

    def advance(self, applied: List[Any]) -> None:
        """Walk on over ``applied[len(self.applied):]`` (``continues(applied)`` must hold)."""
        for event in applied[len(self.applied):]:
            if isinstance(event, ActionExecuted):
                self.turn_was_hidden, self.last_ml_action_sub_state = self._states_before_action(
                    event.hide_rule_turn, self.turn_was_hidden, self.last_ml_action_sub_state,
                    self.all_states, self.ml_states)
            self.replay.update(event)
            self.applied.append(event)

    def histories(self) -> Tuple[List[State], List[State]]:
        """(all turns, without rule-only turns), ending with the state after the last event."""
        all_states, ml_states = list(self.all_states), list(self.ml_states)
        self._states_before_action(False, self.turn_was_hidden, self.last_ml_action_sub_state,
                                   all_states, ml_states)
        return all_states, ml_states

    def _states_before_action(self, hide_rule_turn: bool, turn_was_hidden: bool, last_ml_action_sub_state: Any,
                              all_states: List[State], ml_states: List[State]) -> Tuple[bool, Any]:
        """One step of `Domain.states_for_tracker_history` for both variants (appends to the lists)."""
        domain, prior = self.domain, self.replay
        if not turn_was_hidden:
            last_ml_action_sub_state = domain._get_prev_action_sub_state(prior)
        if not prior.followup_action and not prior.latest_action_name == prior.active_loop_name:
            turn_was_hidden = hide_rule_turn
        state = domain.get_active_state(prior, omit_unset_slots=self.omit_unset_slots)
        all_states.append(domain._clean_state(_copy(state)))
        if turn_was_hidden:
            return turn_was_hidden, last_ml_action_sub_state
        domain._remove_rule_only_features(state, self.rule_only_data)
        if ml_states:
            domain._substitute_rule_only_user_input(state, ml_states[-1])
        if last_ml_action_sub_state:
            state[PREVIOUS_ACTION] = last_ml_action_sub_state
        ml_states.append(domain._clean_state(state))
        return turn_was_hidden, last_ml_action_sub_state


#: Walks kept per tracker, one per (domain, omit_unset_slots, rule-only data) asked for.
MAX_WALKS = 4


def past_states(self: Any, domain: Domain, omit_unset_slots: bool = False, ignore_rule_only_turns: bool = False,
                rule_only_data: Optional[Dict[Text, Any]] = None) -> List[State]:
    """Drop-in for `DialogueStateTracker.past_states`."""
    events = self.events
    last = events[-1] if events else None
    key = (id(domain), omit_unset_slots, _rule_only_key(rule_only_data))
    walks: Dict[Tuple, Any] = self.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    cached = walks.get(key)
    if cached is None or cached[0] != len(events) or cached[1] is not last:
        walk = cached[3] if cached is not None else None
        applied = self.applied_events()
        if walk is None or walk.domain is not domain or not walk.continues(applied):
            walk = _Walk(self, domain, omit_unset_slots, rule_only_data)
        walk.advance(applied)
        cached = (len(events), last, walk.histories(), walk)
        walks.pop(key, None)
        walks[key] = cached
        while len(walks) > MAX_WALKS:
            walks.pop(next(iter(walks)))
    return [_copy(state) for state in cached[2][1 if ignore_rule_only_turns else 0]]


def install() -> None:
    """Replace `DialogueStateTracker.past_states` (idempotent)."""
    from rasa.shared.core.trackers import DialogueStateTracker

    if not _STOCK:
        _STOCK.append(DialogueStateTracker.past_states)
        DialogueStateTracker.past_states = past_states  # type: ignore[assignment]
