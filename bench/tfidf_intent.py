"""Baseline (b): TF-IDF character n-grams + logistic regression.

No tokeniser, no dictionary, no entities: a message is normalised exactly as
Kefu normalises it (bot.nlu.textnorm: Traditional → Simplified, full-width →
half-width, whitespace), then cut into character 1..n-grams.  Retrieval
intents are handled as Rasa handles them: the intent classifier sees every
`faq/*` example as the one intent `faq`, and a second classifier of the same
kind, trained on the FAQ examples only, picks the sub-intent (Rasa's
ResponseSelector does that job in the other two systems).

Hyper-parameters (C, n) are chosen by cross-validation on the training data
only (:func:`select_by_cv`), never on a held-out file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from bot.nlu.textnorm import normalize_text
from bench.nlu_metrics import FALLBACK_INTENT

RETRIEVAL_SEPARATOR = "/"


def base_intent(label: str) -> str:
    """`faq/warranty` → `faq`; other intents unchanged."""
    return label.split(RETRIEVAL_SEPARATOR, 1)[0]


def _pipeline(c: float, max_ngram: int, seed: int) -> Pipeline:
    return make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, max_ngram), sublinear_tf=True,
                        preprocessor=lambda text: normalize_text(text).lower()),
        # liblinear (one-vs-rest): a fit takes about a second here, where
        # lbfgs's multinomial fit took 35 s on the shared machine.
        LogisticRegression(C=c, solver="liblinear", random_state=seed),
    )


@dataclass
class Prediction:
    intent: str
    confidence: float
    # Sub-intent chosen by each retrieval intent's selector (`faq` →
    # `faq/warranty`), for every message, as Rasa's ResponseSelector does.
    responses: dict[str, str]


class TfidfIntentClassifier:
    """Intent classifier plus a sub-intent classifier for retrieval intents."""

    def __init__(self, c: float = 10.0, max_ngram: int = 3, seed: int = 42,
                 fallback_threshold: Optional[float] = None, ambiguity_threshold: float = 0.0) -> None:
        self.c, self.max_ngram, self.seed = c, max_ngram, seed
        self.fallback_threshold = fallback_threshold
        self.ambiguity_threshold = ambiguity_threshold
        self._intents: Optional[Pipeline] = None
        self._responses: dict[str, Pipeline] = {}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "TfidfIntentClassifier":
        """``labels`` are full intents (`greet`, `faq/warranty`)."""
        if len(texts) != len(labels) or not texts:
            raise ValueError("texts and labels must be non-empty and of equal length")
        intents = [base_intent(label) for label in labels]
        if len(set(intents)) < 2:
            raise ValueError("need at least two intents")
        self._intents = _pipeline(self.c, self.max_ngram, self.seed).fit(list(texts), intents)
        self._responses = {}
        for retrieval in sorted({base_intent(label) for label in labels if RETRIEVAL_SEPARATOR in label}):
            pairs = [(t, label) for t, label in zip(texts, labels) if base_intent(label) == retrieval]
            if len({label for _, label in pairs}) >= 2:
                self._responses[retrieval] = _pipeline(self.c, self.max_ngram, self.seed).fit(
                    [t for t, _ in pairs], [label for _, label in pairs])
        return self

    def predict(self, text: str) -> Prediction:
        """One message, as a live parser sees it."""
        if self._intents is None:
            raise RuntimeError("classifier is not trained")
        probabilities = self._intents.predict_proba([text])[0]
        order = np.argsort(probabilities)[::-1]
        intent = str(self._intents.classes_[order[0]])
        confidence = float(probabilities[order[0]])
        if self.fallback_threshold is not None:
            second = float(probabilities[order[1]]) if len(order) > 1 else 0.0
            if confidence < self.fallback_threshold or confidence - second < self.ambiguity_threshold:
                intent = FALLBACK_INTENT
        responses = {name: str(selector.predict([text])[0]) for name, selector in self._responses.items()}
        return Prediction(intent, confidence, responses)

    def with_fallback(self, threshold: float, ambiguity: float) -> "TfidfIntentClassifier":
        """The same fitted model behind a fallback rule like Rasa's
        FallbackClassifier: below ``threshold``, or within ``ambiguity`` of
        the runner-up, the intent becomes `nlu_fallback`."""
        other = TfidfIntentClassifier(self.c, self.max_ngram, self.seed, threshold, ambiguity)
        other._intents, other._responses = self._intents, self._responses
        return other


def select_by_cv(texts: Sequence[str], labels: Sequence[str],
                 grid: Iterable[tuple[float, int]] = ((1.0, 3), (10.0, 3), (100.0, 3),
                                                      (1.0, 4), (10.0, 4), (100.0, 4)),
                 folds: int = 5, seed: int = 42) -> dict:
    """Chooses (C, n) by stratified k-fold intent accuracy on training data."""
    intents = np.array([base_intent(label) for label in labels])
    data = np.array(list(texts), dtype=object)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(data, intents))
    results = []
    for c, max_ngram in grid:
        accuracies = []
        for train_index, test_index in splits:
            model = _pipeline(c, max_ngram, seed).fit(list(data[train_index]), intents[train_index])
            accuracies.append(float(np.mean(model.predict(list(data[test_index])) == intents[test_index])))
        results.append({"c": c, "max_ngram": max_ngram, "cv_accuracy": round(float(np.mean(accuracies)), 4)})
    best = max(results, key=lambda r: (r["cv_accuracy"], -r["c"], -r["max_ngram"]))
    return {"best": best, "grid": results, "folds": folds}
