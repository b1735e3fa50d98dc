"""Kefu's RulePolicy finds exactly the rules Rasa's stock lookup finds, on Kefu's trained rules."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH
from rasa.core.policies.rule_policy import RulePolicy as StockRulePolicy

from bot.policies.rules import RulePolicy
from tests.conftest import MODEL


def _trained_lookup() -> dict:
    if not MODEL.exists():
        pytest.skip("no trained model (make model)")
    with tarfile.open(MODEL) as archive:
        for member in archive.getmembers():
            if member.name.endswith("rule_policy.json"):
                lookup = json.load(archive.extractfile(member)).get("lookup")
                if lookup:
                    return lookup
    raise AssertionError("the trained model has no RulePolicy lookup")


LOOKUP = _trained_lookup() if MODEL.exists() else {RULES: {}, RULES_FOR_LOOP_UNHAPPY_PATH: {}}
RULE_STATES = [state for key in LOOKUP[RULES] for state in json.loads(key)] or [{}]


def _policy(cls: type) -> StockRulePolicy:
    policy = cls.__new__(cls)  # only the lookup is needed; no graph, storage or training
    policy.lookup = LOOKUP
    return policy


def _json_state(state: dict) -> dict:
    """States as a tracker makes them: tuples where the rule JSON has lists."""
    return {kind: {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}
            for kind, sub in state.items()}


# Conversations that end in a rule's states (so that rules do match), often
# with the rule's first state cut off or with sub-states dropped (so that
# some stop matching only one or two states back), after a random prefix.
_RULES = [[_json_state(s) for s in json.loads(key)] for key in LOOKUP[RULES]] or [[{}]]
_state = st.sampled_from(RULE_STATES).map(_json_state).flatmap(
    lambda s: st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in s.items()}))
_ending = st.tuples(st.sampled_from(_RULES), st.booleans(), st.booleans()).map(
    lambda r: r[0][1:] if r[1] and len(r[0]) > 1 else (r[0][:-1] + [{}] if r[2] else r[0]))
conversations = st.tuples(st.lists(_state, max_size=20), _ending).map(lambda c: c[0] + c[1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states=conversations)
def test_same_rules_as_the_stock_lookup(states: list) -> None:
    ours, stock = _policy(RulePolicy), _policy(StockRulePolicy)
    for table in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH):
        assert ours._get_possible_keys(LOOKUP[table], states) == stock._get_possible_keys(LOOKUP[table], states)


def test_every_rule_is_found_on_its_own_states() -> None:
    ours, stock = _policy(RulePolicy), _policy(StockRulePolicy)
    for key in LOOKUP[RULES]:
        states = [_json_state(s) for s in json.loads(key)]
        found = ours._get_possible_keys(LOOKUP[RULES], states)
        assert key in found
        assert found == stock._get_possible_keys(LOOKUP[RULES], states)


def test_the_policy_keeps_rasas_name() -> None:
    # Rasa's ensemble recognises rule predictions by the name's suffix.
    assert RulePolicy.__name__ == StockRulePolicy.__name__


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=_state, turn=st.integers(0, 3), unset=st.booleans(),
       key=st.one_of(st.sampled_from(sorted(LOOKUP[RULES]) or [json.dumps([{}])]),  # or a conversation-start rule
                     st.just(json.dumps([{"user": {"intent": "greet"}},
                                         {"prev_action": {"action_name": "utter_greet"}, "user": {"intent": "greet"},
                                          "slots": {"verified": [1.0]}}]))))
def test_each_rule_test_is_rasas(state: dict, turn: int, key: str, unset: bool) -> None:
    """The compiled check answers as `_is_rule_applicable` does, state by state (also for slots set to
    Rasa's should-not-be-set marker, as in training)."""
    from rasa.shared.core.constants import SHOULD_NOT_BE_SET

    if unset and "slots" in state:
        state = {**state, "slots": {name: SHOULD_NOT_BE_SET for name in state["slots"]}}
    ours, stock = _policy(RulePolicy), _policy(StockRulePolicy)
    assert ours._is_rule_applicable(key, turn, state) == stock._is_rule_applicable(key, turn, state)
