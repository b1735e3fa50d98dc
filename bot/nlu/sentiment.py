"""Rasa NLU component that marks strongly negative (angry, distressed) messages,
and the command that trains its classifier.

The classifier lives in :mod:`bot.nlu.sentiment_model` (plain scikit-learn);
it is trained by ``python -m bot.nlu.sentiment --out models/sentiment``
(scripts/train.sh does it before ``rasa train``) and, like ``SpacyNLP``'s
``models/spacy_zh``, loaded from that folder when Rasa starts: the component is
not trainable inside Rasa, so a corpus change needs no DIET retraining.

Every parsed message gets ``parse_data["sentiment"] = {"label": ..., "score": p}``
which dialogue policies (:mod:`bot.policies.upset`) and actions read from the
tracker.  Messages in Rasa's ``/intent`` shorthand (buttons, tests) are written
by us, not typed by a customer, and are always ``other`` with score 0.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu import sentiment_model
from bot.nlu.sentiment_model import OTHER, Sentiment, SentimentModel

logger = logging.getLogger(__name__)

SENTIMENT = "sentiment"
_INTENT_SHORTHAND_RE = re.compile(r"^/[A-Za-z_]")


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class SentimentAnalyzer(GraphComponent):
    """Adds ``sentiment`` to every message's parse data."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # threshold: None keeps the one stored with the model (meta.json).
        return {"model": "models/sentiment", "threshold": None}

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["zh"]

    @staticmethod
    def required_packages() -> List[Text]:
        return ["sklearn", "joblib"]

    def __init__(self, config: Dict[Text, Any], model: SentimentModel) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model = model
        if self._config["threshold"] is not None:
            threshold = float(self._config["threshold"])
            if not 0.0 < threshold < 1.0:
                raise ValueError("SentimentAnalyzer: threshold must be between 0 and 1")
            self._model.threshold = threshold

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext) -> SentimentAnalyzer:
        directory = Path({**cls.get_default_config(), **config}["model"])
        return cls(config, SentimentModel.load(directory))

    def analyse(self, text: Optional[Text]) -> Sentiment:
        if not isinstance(text, str) or _INTENT_SHORTHAND_RE.match(text):
            return Sentiment(OTHER, 0.0)
        return self._model.predict(text)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            sentiment = self.analyse(message.get(TEXT))
            message.set(SENTIMENT, sentiment.as_dict(), add_to_output=True)
        return messages


def train(out: Path, corpus: Path = sentiment_model.CORPUS_DIR) -> sentiment_model.Evaluation:
    """Train on the corpus, score the held-out file, save model and figures."""
    texts, labels = sentiment_model.read_corpus(corpus)
    heldout_texts, heldout_labels = sentiment_model.read_heldout(corpus / "heldout.txt")
    model = SentimentModel.train(texts, labels)
    evaluation = sentiment_model.evaluate(model, heldout_texts, heldout_labels)
    model.save(out, {
        "trained_on": len(texts),
        "heldout": {"total": evaluation.total, "accuracy": round(evaluation.accuracy, 4),
                    "precision": round(evaluation.precision, 4),
                    "recall": round(evaluation.recall, 4)},
    })
    return evaluation


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Train the strongly-negative sentiment classifier.")
    parser.add_argument("--out", type=Path, default=Path("models/sentiment"))
    parser.add_argument("--corpus", type=Path, default=sentiment_model.CORPUS_DIR)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    evaluation = train(args.out, args.corpus)
    print(f"Sentiment model saved to {args.out} in {time.perf_counter() - start:.1f} s; "
          f"held-out ({evaluation.total}): accuracy {evaluation.accuracy:.3f}, "
          f"strong_negative precision {evaluation.precision:.3f} recall {evaluation.recall:.3f}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
