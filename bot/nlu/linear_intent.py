"""Kefu's intent classifier: logistic regression over character n-grams and jieba words.

Why not DIET: on Kefu's data a linear model over TF-IDF character n-grams
cross-validates as well as DIET or better (`bench.intent_cv`,
`bench.nlu_feature_cv`), trains in about a second where DIET took a minute
of the three the issue allows, and classifies a message in well under a
millisecond where DIET's TensorFlow call was a sixth of each turn's CPU.
The features are the message text as `ChineseNormalizer` left it
(Traditional → Simplified, full-width → half-width) cut into character
1..``max_ngram``-grams, plus, with ``words: true``, the tokens of the
`JiebaTokenizer` (Kefu's domain dictionary and catalogue words), which is
what this component adds over the character-only TF-IDF baseline.

Retrieval intents are classified as their base intent (`faq`), as Rasa's
own classifiers do; the `RetrievalIntentResponseSelector` picks the answer.
Probabilities go to Rasa's `FallbackClassifier` unchanged; its thresholds
in config.yml were chosen by cross-validation for this model's spread.

Saved with joblib in the component's model storage.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Text

import joblib
import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from bot.nlu.fast_linear import FastScorer

logger = logging.getLogger(__name__)

MODEL_FILE = "intents.joblib"
# Joins a message's text and its tokens into one string the vectorizers
# split apart again; it cannot occur in normalised text.
_SEPARATOR = "\x1f"


def _text_part(document: str) -> str:
    return document.split(_SEPARATOR, 1)[0]


def _word_part(document: str) -> List[str]:
    words = document.split(_SEPARATOR, 1)[1] if _SEPARATOR in document else ""
    return [w for w in words.split(" ") if w]


def _document(message: Message) -> str:
    text = (message.get(TEXT) or "").lower()
    tokens = message.get(TOKENS_NAMES[TEXT]) or []
    return text + _SEPARATOR + " ".join(t.text.lower().replace(" ", "") for t in tokens)


def build_pipeline(max_ngram: int, words: bool, c: float, multinomial: bool, seed: int) -> Pipeline:
    """The sklearn model: character n-grams (and jieba words), then logistic regression."""
    parts = [("chars", TfidfVectorizer(analyzer="char", ngram_range=(1, max_ngram), sublinear_tf=True,
                                       preprocessor=_text_part, lowercase=False))]
    if words:
        parts.append(("words", TfidfVectorizer(analyzer=_word_part, sublinear_tf=True, lowercase=False)))
    return Pipeline([("features", FeatureUnion(parts)), ("classifier", make_classifier(c, multinomial, seed))])


def make_classifier(c: float, multinomial: bool, seed: int, balanced: bool = False) -> LogisticRegression:
    """Softmax (saga) or one-vs-rest (liblinear) logistic regression; `bench.intent_cv` compares them."""
    weights = "balanced" if balanced else None
    if multinomial:
        return LogisticRegression(C=c, solver="saga", max_iter=3000, tol=1e-3, random_state=seed,
                                  class_weight=weights)
    return LogisticRegression(C=c, solver="liblinear", random_state=seed, class_weight=weights)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(IntentClassifier, GraphComponent):
    """Sets ``intent`` and ``intent_ranking`` from a logistic regression."""

    @classmethod
    def required_components(cls) -> List[type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> List[Text]:
        return ["sklearn", "joblib"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"max_ngram": 2, "words": True, "c": 300.0, "multinomial": True,
                "random_seed": 42, "ranking_length": LABEL_RANKING_LENGTH}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 pipeline: Optional[Pipeline] = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._pipeline = pipeline
        self._fast: Optional[FastScorer | bool] = None  # built on first use

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LinearIntentClassifier":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        labels = [e.get(INTENT) for e in examples]
        if len(set(labels)) < 2:
            logger.warning("LinearIntentClassifier needs examples of two intents or more; not trained")
            return self._resource
        self._pipeline = build_pipeline(int(self.config["max_ngram"]), bool(self.config["words"]),
                                        float(self.config["c"]), bool(self.config["multinomial"]),
                                        int(self.config["random_seed"]))
        self._pipeline.fit([_document(e) for e in examples], labels)
        self._fast = None
        with self._model_storage.write_to(self._resource) as directory:
            joblib.dump(self._pipeline, directory / MODEL_FILE)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "LinearIntentClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                pipeline = joblib.load(directory / MODEL_FILE)
        except (ValueError, FileNotFoundError):
            logger.warning("LinearIntentClassifier has no trained model; it will not classify")
            pipeline = None
        return cls(config, model_storage, resource, pipeline)

    def process(self, messages: List[Message]) -> List[Message]:
        if self._pipeline is None or not messages:
            return messages
        probabilities = self._predict_proba([_document(m) for m in messages])
        for message, row in zip(messages, probabilities):
            ranking = self._ranking(self._pipeline.classes_, row)
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def _predict_proba(self, documents: List[str]) -> np.ndarray:
        if self._fast is None:
            self._fast = FastScorer.for_pipeline(self._pipeline) or False
        if self._fast:
            return np.vstack([self._fast.predict_proba(d)[0] for d in documents])
        return self._pipeline.predict_proba(documents)

    def _ranking(self, classes: Sequence[str], row: np.ndarray) -> List[Dict[Text, Any]]:
        order = np.argsort(-row)
        length = int(self.config["ranking_length"]) or len(order)
        return [{INTENT_NAME_KEY: str(classes[i]), PREDICTED_CONFIDENCE_KEY: float(row[i])}
                for i in order[:length]]
