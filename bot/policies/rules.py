"""Rasa's RulePolicy with a rule lookup that stops once every rule has been checked.

Why: every prediction (several per customer message) asks which learned rules
fit the conversation, and Rasa 3.6 answers by testing all rules against every
state of the session, newest first.  A rule only constrains as many states as
it has (Kefu's have at most two); further back Rasa's own test,
``_is_rule_applicable``, returns True without looking.  So after the longest
remaining rule is exhausted the rest of the walk cannot change the answer.
Stopping there gives the same rules in the same set; under the REST load the
full walk was a tenth of the Rasa process's CPU (BENCHMARKS.md, "REST round
trips").

Each test of a rule against a state is also compiled once per rule
(`_compiled`): Rasa re-reverses the rule's states and converts its JSON lists
to tuples on every call, some hundreds of times per prediction.

The class keeps Rasa's name: Rasa recognises rule predictions by a policy
name ending in ``_RulePolicy`` (``rasa.core.policies.ensemble``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Set, Text, Tuple

from rasa.core.policies import rule_policy
from rasa.shared.core.constants import PREVIOUS_ACTION, SHOULD_NOT_BE_SET
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.generator import State


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True)
class RulePolicy(rule_policy.RulePolicy):
    """Stock RulePolicy; `_get_possible_keys` skips the states no rule reaches."""

    _rule_lengths: Dict[Text, int]

    #: Per rule, newest state first: (has a previous action, the (state type,
    #: key, value, must equal) checks `_does_rule_match_state` makes).
    Compiled = Tuple[Tuple[bool, Tuple[Tuple[Text, Text, Any, bool], ...]], ...]

    def _compiled(self, rule_key: Text) -> "RulePolicy.Compiled":
        compiled_rules = self.__dict__.setdefault("_compiled_rules", {})
        compiled = compiled_rules.get(rule_key)
        if compiled is None:
            steps = []
            for rule_state in reversed(self._rule_key_to_state(rule_key)):
                checks = []
                for state_type, sub_state in rule_state.items():
                    for key, value in sub_state.items():
                        if isinstance(value, list):
                            value = tuple(value)  # as Rasa compares them
                        if value == SHOULD_NOT_BE_SET:
                            checks.append((state_type, key, value, False))
                        elif value:
                            checks.append((state_type, key, value, True))
                steps.append((bool(rule_state.get(PREVIOUS_ACTION)), tuple(checks)))
            compiled = compiled_rules[rule_key] = tuple(steps)
        return compiled

    def _is_rule_applicable(self, rule_key: Text, turn_index: int, conversation_state: Dict) -> bool:
        """Rasa's `_is_rule_applicable`, over the compiled rule."""
        compiled = self._compiled(rule_key)
        if turn_index >= len(compiled):
            return True
        rule_has_previous_action, checks = compiled[turn_index]
        has_previous_action = bool(conversation_state.get(PREVIOUS_ACTION))
        if not rule_has_previous_action and not has_previous_action:
            return True
        if not rule_has_previous_action or not has_previous_action:
            return False
        for state_type, key, value, must_equal in checks:
            found = conversation_state.get(state_type, {}).get(key)
            if must_equal:
                if found != value:
                    return False
            elif found and found != SHOULD_NOT_BE_SET:
                return False
        return True

    def _rule_length(self, rule_key: Text) -> int:
        lengths = self.__dict__.setdefault("_rule_lengths", {})
        length = lengths.get(rule_key)
        if length is None:
            length = lengths[rule_key] = len(self._rule_key_to_state(rule_key))
        return length

    def _get_possible_keys(self, lookup: Dict[Text, Text], states: List[State]) -> Set[Text]:
        possible_keys = set(lookup.keys())
        for turn_index, state in enumerate(reversed(states)):
            if all(self._rule_length(key) <= turn_index for key in possible_keys):
                break  # Rasa's _is_rule_applicable is True for all of them from here on
            possible_keys = {key for key in possible_keys
                             if self._is_rule_applicable(key, turn_index, state)}
        return possible_keys
