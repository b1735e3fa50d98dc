"""Which linear intent model, and which fallback thresholds?  Cross-validation only.

    python -m bench.intent_cv

Kefu's DIET intent head scored 0.831 in 5-fold CV on `data/`, a character
n-gram logistic regression 0.846 (`bench.nlu_feature_cv`), and DIET costs
most of the training time and a sixth of every message's CPU.  Before a
linear model replaces it, two questions need answers from the training data
alone (no held-out file is read):

1. which variant: one-vs-rest (liblinear) or multinomial (softmax)
   logistic regression, characters alone or with jieba words, which C;
2. where the fallback goes: a deployed classifier must hand unsure messages
   to the fallback, and the right thresholds depend on how the model's
   probabilities are spread.  For every variant the out-of-fold
   probabilities are kept, and each (threshold, ambiguity) pair is scored:
   accuracy with fallbacks counted wrong (as the held-out test counts them),
   fallback rate, and how many fallbacks caught a message the model would
   have got wrong.

Same 5 stratified folds (seed 42) as `bench.nlu_feature_cv`.  Writes
var/bench/intent_cv.json.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Callable

import jieba
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline, make_union

from bench.nlu_baselines import load_examples
from bench.nlu_feature_cv import _chars, _tokens, _words, _words_and_bigrams
from bot.nlu.linear_intent import make_classifier
from bot.nlu.textnorm import normalize_text
from bot.settings import ROOT

OUT = ROOT / "var" / "bench" / "intent_cv.json"
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
AMBIGUITIES = (0.0, 0.02, 0.05, 0.08)


@dataclass(frozen=True)
class Variant:
    name: str
    features: Callable[[], object]
    classifier: Callable[[], LogisticRegression]


def _ovr(c: float) -> Callable[[], LogisticRegression]:
    return lambda: make_classifier(c, multinomial=False, seed=42)


def _softmax(c: float, balanced: bool = False) -> Callable[[], LogisticRegression]:
    return lambda: make_classifier(c, multinomial=True, seed=42, balanced=balanced)


def variants() -> list[Variant]:
    chars3 = lambda: _chars(3)  # noqa: E731
    chars2_words = lambda: make_union(_chars(2), _tokens(_words))  # noqa: E731
    chars3_words = lambda: make_union(_chars(3), _tokens(_words))  # noqa: E731
    out = []
    for c in (30.0, 100.0):
        out.append(Variant(f"ovr chars1-3 C={c:g}", chars3, _ovr(c)))
        out.append(Variant(f"ovr chars1-2+words C={c:g}", chars2_words, _ovr(c)))
    for c in (10.0, 30.0, 100.0):
        out.append(Variant(f"softmax chars1-3 C={c:g}", chars3, _softmax(c)))
        out.append(Variant(f"softmax chars1-2+words C={c:g}", chars2_words, _softmax(c)))
        out.append(Variant(f"softmax chars1-3+words C={c:g}", chars3_words, _softmax(c)))
    # second round, around the best of the first (softmax, chars 1-2 + words, C=100)
    chars2_bigrams = lambda: make_union(_chars(2), _tokens(_words_and_bigrams))  # noqa: E731
    out.append(Variant("softmax chars1-2+words C=300", chars2_words, _softmax(300.0)))
    out.append(Variant("softmax chars1-2+words C=1000", chars2_words, _softmax(1000.0)))
    out.append(Variant("softmax chars1-2+words balanced C=100", chars2_words, _softmax(100.0, True)))
    out.append(Variant("softmax chars1-2+words+bigrams C=100", chars2_bigrams, _softmax(100.0)))
    out.append(Variant("softmax chars1-2+words+bigrams C=300", chars2_bigrams, _softmax(300.0)))
    return out


def with_fallback(proba: np.ndarray, classes: np.ndarray, threshold: float, ambiguity: float) -> np.ndarray:
    """Rasa's FallbackClassifier rule on a probability matrix."""
    order = np.argsort(-proba, axis=1)
    top = proba[np.arange(len(proba)), order[:, 0]]
    second = proba[np.arange(len(proba)), order[:, 1]]
    predicted = classes[order[:, 0]].astype(object)
    unsure = (top < threshold) | (top - second < ambiguity)
    predicted[unsure] = "nlu_fallback"
    return predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="substring of the variant names to run")
    args = parser.parse_args()
    jieba.setLogLevel(60)
    jieba.load_userdict(str(ROOT / "data" / "jieba" / "userdict.txt"))
    examples = load_examples(ROOT / "data" / "nlu")
    texts = np.array([normalize_text(e.text).lower() for e in examples], dtype=object)
    gold = np.array([e.intent for e in examples], dtype=object)
    classes = np.array(sorted(set(gold)), dtype=object)
    splits = list(StratifiedKFold(5, shuffle=True, random_state=42).split(texts, gold))
    rows = []
    for variant in variants():
        if args.only and args.only not in variant.name:
            continue
        proba = np.zeros((len(texts), len(classes)))
        started = time.perf_counter()
        for train, test in splits:
            model = make_pipeline(variant.features(), variant.classifier()).fit(list(texts[train]), gold[train])
            columns = [int(np.where(classes == c)[0][0]) for c in model.classes_]
            proba[np.ix_(test, columns)] = model.predict_proba(list(texts[test]))
        fit_seconds = (time.perf_counter() - started) / len(splits)
        plain = classes[np.argmax(proba, axis=1)]
        wrong = plain != gold
        row = {"variant": variant.name, "fit_seconds": round(fit_seconds, 2),
               "accuracy": round(float(np.mean(~wrong)), 4),
               "macro_f1": round(float(f1_score(gold, plain, labels=classes, average="macro")), 4),
               "fallback": []}
        for threshold in THRESHOLDS:
            for ambiguity in AMBIGUITIES:
                predicted = with_fallback(proba, classes, threshold, ambiguity)
                fell = predicted == "nlu_fallback"
                row["fallback"].append({
                    "threshold": threshold, "ambiguity": ambiguity,
                    "accuracy": round(float(np.mean(predicted == gold)), 4),
                    "fallback_rate": round(float(np.mean(fell)), 4),
                    # of the fallbacks, the share that caught a wrong answer
                    "caught_wrong": round(float(np.mean(wrong[fell])), 3) if fell.any() else None,
                })
        rows.append(row)
        best = max(row["fallback"], key=lambda f: f["accuracy"] - 0.0001 * f["threshold"])
        print(f"{variant.name:34s} acc {row['accuracy']:.4f} macroF1 {row['macro_f1']:.4f} "
              f"fit {fit_seconds:5.1f}s", flush=True)
        for f in row["fallback"]:
            if f["ambiguity"] in (0.0, 0.05) and f["threshold"] in (0.2, 0.3, 0.4, 0.45):
                print(f"    t={f['threshold']:.2f} a={f['ambiguity']:.2f}: acc {f['accuracy']:.4f} "
                      f"fallback {f['fallback_rate']:.3f} caught-wrong {f['caught_wrong']}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"examples": len(examples), "folds": 5, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
