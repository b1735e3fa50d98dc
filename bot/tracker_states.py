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
each), keeps them on the tracker object until its history changes (a new or
different latest event), and hands every caller its own copy, because Rasa's
featurizer edits the last state it gets.  Training is unaffected: the
trackers Rasa trains on (`TrackerWithCachedStates`) have their own
`past_states`.  `tests/bot/test_tracker_states.py` compares every state of
every training story and rule, at every point of the conversation, with
Rasa's own computation.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State

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


def both_state_histories(tracker: Any, domain: Domain, omit_unset_slots: bool,
                         rule_only_data: Optional[Dict[Text, Any]]) -> Tuple[List[State], List[State]]:
    """(all turns, without rule-only turns): `Domain.states_for_tracker_history`
    with ``ignore_rule_only_turns`` False and True, from one replay."""
    all_states: List[State] = []
    ml_states: List[State] = []
    last_ml_action_sub_state = None
    turn_was_hidden = False
    for prior, hide_rule_turn in tracker.generate_all_prior_trackers():
        if not turn_was_hidden:
            last_ml_action_sub_state = domain._get_prev_action_sub_state(prior)
        if not prior.followup_action and not prior.latest_action_name == prior.active_loop_name:
            turn_was_hidden = hide_rule_turn
        state = domain.get_active_state(prior, omit_unset_slots=omit_unset_slots)
        all_states.append(domain._clean_state(_copy(state)))
        if turn_was_hidden:
            continue
        domain._remove_rule_only_features(state, rule_only_data)
        if ml_states:
            domain._substitute_rule_only_user_input(state, ml_states[-1])
        if last_ml_action_sub_state:
            state[PREVIOUS_ACTION] = last_ml_action_sub_state
        ml_states.append(domain._clean_state(state))
    return all_states, ml_states


def past_states(self: Any, domain: Domain, omit_unset_slots: bool = False, ignore_rule_only_turns: bool = False,
                rule_only_data: Optional[Dict[Text, Any]] = None) -> List[State]:
    """Drop-in for `DialogueStateTracker.past_states`."""
    events = self.events
    key = (len(events), id(events[-1]) if events else None, id(domain), omit_unset_slots,
           _rule_only_key(rule_only_data))
    cached = self.__dict__.get(_CACHE_ATTRIBUTE)
    if cached is None or cached[0] != key:
        cached = (key, both_state_histories(self, domain, omit_unset_slots, rule_only_data),
                  events[-1] if events else None, domain)  # the last two keep the ids in the key unique
        self.__dict__[_CACHE_ATTRIBUTE] = cached
    return [_copy(state) for state in cached[1][1 if ignore_rule_only_turns else 0]]


def install() -> None:
    """Replace `DialogueStateTracker.past_states` (idempotent)."""
    from rasa.shared.core.trackers import DialogueStateTracker

    if not _STOCK:
        _STOCK.append(DialogueStateTracker.past_states)
        DialogueStateTracker.past_states = past_states  # type: ignore[assignment]
