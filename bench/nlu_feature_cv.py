"""Would Kefu's Chinese word features help a linear intent classifier?  Cross-validation only.

    python -m bench.nlu_feature_cv

TF-IDF (sublinear) + liblinear logistic regression, as the baseline in
`bench.tfidf_intent`, on the training data (`data/nlu`) only, with the same
5 stratified folds (seed 42) for every feature set: character n-grams alone
(the baseline), and with jieba words (Kefu's domain dictionary), word bigrams,
longer or shorter n-grams.  No held-out file is read: this is how a feature
choice is made before the held-out files see it.  Prints one line per
(features, C) and writes var/bench/nlu_feature_cv.json.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import jieba
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline, make_union

from bench.nlu_baselines import load_examples
from bot.nlu.textnorm import normalize_text
from bot.settings import ROOT

OUT = ROOT / "var" / "bench" / "nlu_feature_cv.json"


def _words(text: str) -> list[str]:
    return [w for w in jieba.lcut(text) if w.strip()]


def _words_and_bigrams(text: str) -> list[str]:
    words = _words(text)
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]


def _chars(n: int) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char", ngram_range=(1, n), sublinear_tf=True)


def _tokens(analyzer: Callable[[str], list[str]]) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=analyzer, sublinear_tf=True)


FEATURES: dict[str, Callable[[], object]] = {
    "chars 1-3 (baseline)": lambda: _chars(3),
    "chars 1-3 + words": lambda: make_union(_chars(3), _tokens(_words)),
    "chars 1-3 + words + word bigrams": lambda: make_union(_chars(3), _tokens(_words_and_bigrams)),
    "chars 1-4 + words": lambda: make_union(_chars(4), _tokens(_words)),
    "chars 1-2 + words": lambda: make_union(_chars(2), _tokens(_words)),
}


def main() -> None:
    jieba.setLogLevel(60)
    jieba.load_userdict(str(ROOT / "data" / "jieba" / "userdict.txt"))
    examples = load_examples(ROOT / "data" / "nlu")
    texts = np.array([normalize_text(e.text).lower() for e in examples], dtype=object)
    intents = np.array([e.intent for e in examples])
    splits = list(StratifiedKFold(5, shuffle=True, random_state=42).split(texts, intents))
    rows = []
    for name, features in FEATURES.items():
        for c in (10.0, 30.0, 100.0):
            scores = []
            for train, test in splits:
                model = make_pipeline(features(), LogisticRegression(C=c, solver="liblinear", random_state=42))
                model.fit(list(texts[train]), intents[train])
                scores.append(float(np.mean(model.predict(list(texts[test])) == intents[test])))
            row = {"features": name, "c": c, "cv_accuracy": round(float(np.mean(scores)), 4),
                   "cv_std": round(float(np.std(scores)), 4)}
            rows.append(row)
            print(f"{name:34s} C={c:5.0f}  {row['cv_accuracy']:.4f} ± {row['cv_std']:.3f}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"examples": len(examples), "folds": 5, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
