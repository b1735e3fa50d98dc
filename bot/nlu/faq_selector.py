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
"""
from __future__ import annotations

from typing import List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
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
        intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if self.retrieval_intent:
            return intent == self.retrieval_intent
        return intent in (self.all_retrieval_intents or ())
