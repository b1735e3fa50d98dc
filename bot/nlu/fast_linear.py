"""A fitted TF-IDF + logistic regression pipeline's probabilities for one message, in plain numpy.

Why: Kefu's intent model (`bot.nlu.linear_intent`) and its sentiment model
(`bot.nlu.sentiment_model`) are both scikit-learn pipelines scored one
customer message at a time, and sklearn's per-call machinery (fitted checks,
input validation, sparse matrix construction, a `FeatureUnion` that goes
through joblib even with one job, a sparse-by-dense product over every
feature) cost about 2 ms a message for the intents alone, forty times the
arithmetic: count the message's known n-grams (and words), weight them
(1 + log tf) x idf, normalise each block to unit length, and take the
softmax (several classes) or the logistic (two classes) of the scores over
those few features.

Built only for what Kefu ships: TF-IDF vectorizers with sublinear tf and l2
norm (one, or several in a `FeatureUnion`), then a logistic regression:
multinomial (softmax of the scores), one-vs-rest over several classes (each
class's logistic, rescaled to sum to one, as sklearn does), or binary.
Anything else gets None, and the caller keeps sklearn's path.  Tests hold
the models to sklearn's probabilities.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline


def _vectorizers(features: Any) -> Optional[List[TfidfVectorizer]]:
    parts = [part for _, part in features.transformer_list] if isinstance(features, FeatureUnion) else [features]
    for part in parts:
        if not (isinstance(part, TfidfVectorizer) and part.sublinear_tf and part.use_idf
                and part.norm == "l2" and not part.binary):
            return None
    return parts


class FastScorer:
    """``predict_proba`` of a two-step (features, classifier) pipeline, one document at a time."""

    def __init__(self, blocks: List[tuple], coef: np.ndarray, intercept: np.ndarray, binary: bool,
                 one_vs_rest: bool = False) -> None:
        self._blocks = blocks        # (analyze, vocabulary, idf, column offset) per vectorizer
        self._coef = coef            # classes (1 when binary) x features
        self._intercept = intercept
        self._binary = binary
        self._one_vs_rest = one_vs_rest  # several classes, each its own logistic

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline) -> Optional["FastScorer"]:
        if len(pipeline.steps) != 2:
            return None
        features, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
        vectorizers = _vectorizers(features)
        if vectorizers is None or not isinstance(classifier, LogisticRegression):
            return None
        binary = len(classifier.classes_) == 2
        if binary and classifier.multi_class == "multinomial":
            return None
        # sklearn's own rule for which probabilities predict_proba gives
        one_vs_rest = not binary and (classifier.multi_class == "ovr" or (
            classifier.multi_class == "auto" and classifier.solver == "liblinear"))
        blocks, offset = [], 0
        for part in vectorizers:
            blocks.append((part.build_analyzer(), part.vocabulary_, part.idf_, offset))
            offset += len(part.vocabulary_)
        if offset != classifier.coef_.shape[1]:
            return None
        return cls(blocks, np.ascontiguousarray(classifier.coef_),
                   np.zeros(classifier.coef_.shape[0]) + classifier.intercept_, binary, one_vs_rest)

    def predict_proba(self, document: str) -> Tuple[np.ndarray, bool]:
        """The classes' probabilities (sklearn's order), and whether any feature was known."""
        scores = self._intercept.copy()
        known = False
        for analyze, vocabulary, idf, offset in self._blocks:
            counts: Dict[int, int] = {}
            for feature in analyze(document):
                column = vocabulary.get(feature)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            if not counts:
                continue
            known = True
            columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            weights = (np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts))) + 1.0) * idf[columns]
            weights /= np.sqrt(np.dot(weights, weights))
            scores += self._coef[:, columns + offset] @ weights
        if self._binary:
            positive = expit(scores[0])
            return np.array([1.0 - positive, positive]), known
        if self._one_vs_rest:
            expit(scores, out=scores)
            return scores / scores.sum(), known
        scores -= scores.max()
        np.exp(scores, out=scores)
        return scores / scores.sum(), known
