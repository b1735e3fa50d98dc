"""Hand strongly upset customers to a person before the bot makes it worse.

Rules and forms cannot express "the customer has been angry for N turns in a
row, N depending on who they are": that needs the ``sentiment`` that
:class:`bot.nlu.sentiment.SentimentAnalyzer` adds to every parsed message, a
count over the session, and a threshold read from the environment at
prediction time (:func:`crm_adapter.policy.escalation_threshold`, shared with
the fallback trigger).  So this small policy, ranked above RulePolicy, predicts
``action_escalate_upset`` when that happens and abstains (all zeros) otherwise,
leaving every other decision to the rules.

It never fires inside an active form (the customer may be angry *while*
filing a complaint, and breaking the form would lose it; the complaint's
submission escalates instead, actions/tickets.py) nor when the conversation
already has an escalation (slot ``escalation_id``).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.core.policies.policy import Policy, PolicyPrediction, SupportedData
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from crm_adapter.policy import escalation_threshold

logger = logging.getLogger(__name__)

ACTION_ESCALATE_UPSET = "action_escalate_upset"
STRONG_NEGATIVE = "strong_negative"
EXTERNAL_INTENT_PREFIX = "EXTERNAL_"
# Above RulePolicy (6) so that a rule triggered by the angry message's intent
# does not win the tie at confidence 1.0.
DEFAULT_PRIORITY = 7


def is_strongly_negative(event: UserUttered) -> bool:
    sentiment = (event.parse_data or {}).get("sentiment") or {}
    return isinstance(sentiment, dict) and sentiment.get("label") == STRONG_NEGATIVE


def upset_streak(tracker: DialogueStateTracker) -> int:
    """Strongly negative customer messages in a row, newest first, this session.

    Counting stops at the session start and at a previous upset escalation
    (a customer handed back to the bot starts afresh).  Intents injected by
    the scheduler (``EXTERNAL_*``) are not the customer speaking and are
    skipped; any other message without anger ends the streak.  Messages that
    a fallback reverted still count: the customer did say them.
    """
    streak = 0
    for event in reversed(tracker.events):
        if isinstance(event, SessionStarted):
            break
        if isinstance(event, ActionExecuted) and event.action_name in (
                ACTION_SESSION_START_NAME, ACTION_ESCALATE_UPSET):
            break
        if not isinstance(event, UserUttered):
            continue
        intent = (event.intent or {}).get("name") or ""
        if intent.startswith(EXTERNAL_INTENT_PREFIX):
            continue
        if not is_strongly_negative(event):
            break
        streak += 1
    return streak


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class UpsetCustomerPolicy(Policy):
    """Predicts ``action_escalate_upset`` for a customer angry long enough."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"priority": DEFAULT_PRIORITY}

    @staticmethod
    def supported_data() -> SupportedData:
        return SupportedData.ML_AND_RULE_DATA

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage,
                 resource: Resource, execution_context: ExecutionContext,
                 featurizer: Optional[Any] = None) -> None:
        super().__init__({**self.get_default_config(), **config}, model_storage, resource,
                         execution_context, featurizer)

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain,
              **kwargs: Any) -> Resource:
        """Nothing to learn; persists an empty resource so that loading works."""
        with self._model_storage.write_to(self._resource):
            pass
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[Text, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        action = self._action_for(tracker)
        if action is None or action not in domain.action_names_or_texts:
            return self._prediction(self._default_predictions(domain))
        probabilities = self._default_predictions(domain)
        probabilities[domain.index_for_action(action)] = 1.0
        return self._prediction(probabilities)

    def _action_for(self, tracker: DialogueStateTracker) -> Optional[str]:
        latest = tracker.latest_action_name
        if latest == ACTION_ESCALATE_UPSET:
            return ACTION_LISTEN_NAME
        if latest != ACTION_LISTEN_NAME or tracker.latest_message is None:
            return None
        if tracker.active_loop_name or tracker.get_slot("escalation_id"):
            return None
        streak = upset_streak(tracker)
        if streak == 0:
            return None
        tier = tracker.get_slot("customer_tier")
        threshold = escalation_threshold("upset", tier)
        if streak < threshold:
            logger.debug("Upset streak %d below threshold %d (tier %s)", streak, threshold, tier)
            return None
        logger.info("Escalating an upset customer (streak %d, tier %s, threshold %d)",
                    streak, tier or "unknown", threshold)
        return ACTION_ESCALATE_UPSET
