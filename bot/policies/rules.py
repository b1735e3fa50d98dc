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

The class keeps Rasa's name: Rasa recognises rule predictions by a policy
name ending in ``_RulePolicy`` (``rasa.core.policies.ensemble``).
"""
from __future__ import annotations

from typing import Dict, List, Set, Text

from rasa.core.policies import rule_policy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.generator import State


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True)
class RulePolicy(rule_policy.RulePolicy):
    """Stock RulePolicy; `_get_possible_keys` skips the states no rule reaches."""

    _rule_lengths: Dict[Text, int]

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
