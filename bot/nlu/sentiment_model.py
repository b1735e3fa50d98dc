"""The strongly-negative-sentiment classifier itself (scikit-learn, no Rasa).

Why a classifier of our own: the maintained-looking Chinese sentiment
libraries either ship a model trained on product/hotel reviews (SnowNLP's is a
2013 naive Bayes), where "negative" means "complaint", or need weights from a
hub we cannot reach.  Kefu needs a narrower class: *anger or distress* — a
customer who should be handed to a person — and not the calm complaint
"我要投诉快递丢了", which the bot handles well on its own.  So the labels come
from our own corpus (``bot/nlu/sentiment_corpus/``), and the model is small and
fast: TF-IDF over character 1–3-grams (Chinese needs no segmentation for
that, and typos or odd segmentation do not hurt) and a class-balanced
logistic regression, whose probability is the score the policy reads.

Texts are normalised exactly as the NLU pipeline does (``textnorm``:
Traditional → Simplified, full-width → half-width …) both in training and in
prediction, so 「氣死我了」 and 「气死我了」 are the same input.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from bot.nlu import textnorm
from bot.nlu.fast_linear import FastScorer

STRONG_NEGATIVE = "strong_negative"
OTHER = "other"
LABELS = (STRONG_NEGATIVE, OTHER)

CORPUS_DIR = Path(__file__).resolve().parent / "sentiment_corpus"
MODEL_FILE = "sentiment.joblib"
META_FILE = "meta.json"
# On P(strong_negative).  0.6 rather than 0.5 because a false alarm costs a
# core customer an apology they did not need and an agent's time, while a
# missed one can still ask for a person; 5-fold CV on the corpus: precision
# 0.96 / recall 0.82 at 0.6 against 0.91 / 0.89 at 0.5 (BENCHMARKS.md).
DEFAULT_THRESHOLD = 0.6
# The classifier reads at most this many (normalised) characters: anger shows
# in the first lines of a message, and a pasted novel must not cost seconds.
MAX_CHARS = 500


@dataclass(frozen=True)
class Sentiment:
    label: str
    score: float  # probability that the message is strongly negative

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "score": round(self.score, 4)}


def normalize(text: Optional[str]) -> str:
    return textnorm.normalize_text(text, MAX_CHARS)


def read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a corpus file."""
    lines = (line.strip() for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_corpus(directory: Path = CORPUS_DIR) -> tuple[list[str], list[str]]:
    """Training texts and labels: ``<label>.txt`` per class (heldout.txt is not read)."""
    texts: list[str] = []
    labels: list[str] = []
    for label in LABELS:
        lines = read_lines(directory / f"{label}.txt")
        texts += lines
        labels += [label] * len(lines)
    return texts, labels


def read_heldout(path: Path = CORPUS_DIR / "heldout.txt") -> tuple[list[str], list[str]]:
    """``label<TAB>text`` lines, never used for training."""
    texts: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(read_lines(path), 1):
        label, sep, text = line.partition("\t")
        if not sep or label not in LABELS or not text.strip():
            raise ValueError(f"{path}:{number}: expected '<label>\\t<text>' with label in {LABELS}")
        texts.append(text.strip())
        labels.append(label)
    return texts, labels


def build_pipeline(seed: int = 42) -> Pipeline:
    return Pipeline([
        ("tfidf", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True,
                                  min_df=1, lowercase=True)),
        ("logreg", LogisticRegression(class_weight="balanced", C=10.0, max_iter=2000,
                                      random_state=seed)),
    ])


class SentimentModel:
    """A fitted pipeline plus the decision threshold on P(strong_negative)."""

    def __init__(self, pipeline: Pipeline, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.pipeline = pipeline
        self.threshold = threshold
        self._negative_column = list(pipeline.classes_).index(STRONG_NEGATIVE)
        self._fast = FastScorer.for_pipeline(pipeline)  # None: sklearn's path

    @classmethod
    def train(cls, texts: Sequence[str], labels: Sequence[str],
              threshold: float = DEFAULT_THRESHOLD, seed: int = 42) -> "SentimentModel":
        pipeline = build_pipeline(seed)
        pipeline.fit([normalize(t) for t in texts], list(labels))
        return cls(pipeline, threshold)

    def scores(self, texts: Iterable[Optional[str]]) -> list[float]:
        normalized = [normalize(t) for t in texts]
        if not normalized:
            return []
        if self._fast is not None:  # one message at a time without sklearn's per-call cost
            scored = [self._fast.predict_proba(text) for text in normalized]
            return [float(p[self._negative_column]) if known else 0.0 for p, known in scored]
        features = self.pipeline.named_steps["tfidf"].transform(normalized)
        probabilities = self.pipeline.named_steps["logreg"].predict_proba(features)
        known = features.getnnz(axis=1)
        # A message with no character the corpus knows (empty, only emoji or
        # an unknown script) would get the intercept's probability, which says
        # nothing about this message: call it not-anger.
        return [float(p) if n else 0.0
                for p, n in zip(probabilities[:, self._negative_column], known)]

    def predict(self, text: Optional[str]) -> Sentiment:
        score = self.scores([text])[0]
        return Sentiment(STRONG_NEGATIVE if score >= self.threshold else OTHER, score)

    def predict_many(self, texts: Sequence[Optional[str]]) -> list[Sentiment]:
        return [Sentiment(STRONG_NEGATIVE if s >= self.threshold else OTHER, s)
                for s in self.scores(texts)]

    def save(self, directory: Path, extra: Optional[dict] = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, directory / MODEL_FILE)
        meta = {"threshold": self.threshold, "labels": list(LABELS), **(extra or {})}
        (directory / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> "SentimentModel":
        model_path = directory / MODEL_FILE
        if not model_path.is_file():
            raise FileNotFoundError(
                f"No sentiment model in {directory}: build it with "
                f"`python -m bot.nlu.sentiment --out {directory}` (scripts/train.sh does).")
        meta_path = directory / META_FILE
        meta = json.loads(meta_path.read_text("utf-8")) if meta_path.is_file() else {}
        return cls(joblib.load(model_path), float(meta.get("threshold", DEFAULT_THRESHOLD)))


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    precision: float  # of strong_negative
    recall: float     # of strong_negative
    total: int
    errors: list[tuple[str, str, float]]  # (expected label, text, score)


def evaluate(model: SentimentModel, texts: Sequence[str], labels: Sequence[str]) -> Evaluation:
    predictions = model.predict_many(texts)
    tp = sum(p.label == STRONG_NEGATIVE and y == STRONG_NEGATIVE for p, y in zip(predictions, labels))
    fp = sum(p.label == STRONG_NEGATIVE and y != STRONG_NEGATIVE for p, y in zip(predictions, labels))
    fn = sum(p.label != STRONG_NEGATIVE and y == STRONG_NEGATIVE for p, y in zip(predictions, labels))
    correct = sum(p.label == y for p, y in zip(predictions, labels))
    errors = [(y, t, p.score) for p, y, t in zip(predictions, labels, texts) if p.label != y]
    return Evaluation(
        accuracy=correct / len(labels) if labels else 0.0,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        total=len(labels),
        errors=errors,
    )
