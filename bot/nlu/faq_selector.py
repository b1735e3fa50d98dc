"""Rasa's ResponseSelector, run only on the messages whose intent is the retrieval intent.

Why: the stock selector runs its own neural network on every message, and its
answer is read only when the message was classified as the retrieval intent
(`faq`): Rasa's processor fills in the full retrieval intent only then, the
`faq` rule answers only then, and Kefu's forms read it only then
(`actions/forms.py`).  Under the REST load it was a tenth of the Rasa
process's time, spent mostly on order, refund and complaint messages
(BENCHMARKS.md, "REST round trips").

Training and the answer for a retrieval-intent message are the stock ones.
Other messages still say which retrieval intents exist, as the stock
selector does, but carry no prediction.

The word and character count-vector featurizers and the lexical-syntactic
one feed nothing but this selector since intents come from
`bot.nlu.linear_intent` (which reads tokens, not features) and entities
from the CRF (which reads tokens and the regex matches), so their
`RetrievalOnly*` variants below featurise, at inference, only the messages
already classified as the retrieval intent: the intent classifier runs
before them in config.yml.  Training featurises every example, as stock.
Under the REST load the two count-vector featurizers alone were 4 % of the
Rasa process's CPU, spent on messages whose features nobody read.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.featurizers.sparse_featurizer.lexical_syntactic_featurizer import LexicalSyntacticFeaturizer
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message
from rasa.nlu.constants import RESPONSE_SELECTOR_PROPERTY_NAME, RESPONSE_SELECTOR_RETRIEVAL_INTENTS


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class RetrievalIntentResponseSelector(ResponseSelector):
    """ResponseSelector that predicts only for messages of its retrieval intent."""

    def process(self, messages: List[Message]) -> List[Message]:
        wanted = [m for m in messages if self._selects_for(m)]
        if wanted:
            super().process(wanted)
        for message in messages:
            if not self._selects_for(message):
                properties = message.get(RESPONSE_SELECTOR_PROPERTY_NAME, {})
                properties[RESPONSE_SELECTOR_RETRIEVAL_INTENTS] = self.all_retrieval_intents
                message.set(RESPONSE_SELECTOR_PROPERTY_NAME, properties, add_to_output=True)
        return messages

    def _selects_for(self, message: Message) -> bool:
        intent = classified_as(message)
        if self.retrieval_intent:
            return intent == self.retrieval_intent
        return intent in (self.all_retrieval_intents or ())


ONLY_FOR_INTENT = "only_for_intent"


class _RetrievalOnlyFeaturizer:
    """Featurises at inference only messages classified as ``only_for_intent``."""

    _config: Dict[Text, Any]

    @staticmethod
    def _defaults(stock: Dict[Text, Any]) -> Dict[Text, Any]:
        return {**stock, ONLY_FOR_INTENT: "faq"}

    def process(self, messages: List[Message]) -> List[Message]:
        wanted_intent = self._config.get(ONLY_FOR_INTENT, "faq")
        wanted = [m for m in messages if classified_as(m) in (None, wanted_intent)]
        if wanted:
            super().process(wanted)  # type: ignore[misc]
        return messages


def classified_as(message: Message) -> Optional[Text]:
    """The intent a classifier gave the message, or None: training examples
    carry their label (a string), not a classification."""
    intent = message.get(INTENT)
    return intent.get(INTENT_NAME_KEY) if isinstance(intent, dict) else None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class RetrievalOnlyCountVectorsFeaturizer(_RetrievalOnlyFeaturizer, CountVectorsFeaturizer):
    """Rasa's CountVectorsFeaturizer for the retrieval intent's messages only (see the module docstring)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return _RetrievalOnlyFeaturizer._defaults(CountVectorsFeaturizer.get_default_config())


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class RetrievalOnlyLexicalSyntacticFeaturizer(_RetrievalOnlyFeaturizer, LexicalSyntacticFeaturizer):
    """Rasa's LexicalSyntacticFeaturizer for the retrieval intent's messages only."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return _RetrievalOnlyFeaturizer._defaults(LexicalSyntacticFeaturizer.get_default_config())
