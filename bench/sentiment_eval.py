"""Sentiment classifier figures: 5-fold cross-validation on the corpus, the
held-out file, and the time one message costs.  JSON to var/bench/sentiment.json.

    python -m bench.sentiment_eval
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from sklearn.model_selection import StratifiedKFold

from bot.nlu import sentiment_model
from bot.nlu.sentiment_model import STRONG_NEGATIVE, SentimentModel
from bot.settings import ROOT

OUT = ROOT / "var" / "bench" / "sentiment.json"


def cross_validate(folds: int = 5, seed: int = 42) -> dict[str, float]:
    texts, labels = sentiment_model.read_corpus()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, list[float]] = {"accuracy": [], "precision": [], "recall": []}
    for train_index, test_index in splitter.split(texts, labels):
        model = SentimentModel.train([texts[i] for i in train_index],
                                     [labels[i] for i in train_index])
        result = sentiment_model.evaluate(model, [texts[i] for i in test_index],
                                          [labels[i] for i in test_index])
        scores["accuracy"].append(result.accuracy)
        scores["precision"].append(result.precision)
        scores["recall"].append(result.recall)
    return {f"{name}_{stat}": round(fn(values), 4) for name, values in scores.items()
            for stat, fn in (("mean", statistics.mean), ("stdev", statistics.stdev))}


def latency(model: SentimentModel, repeats: int = 2000) -> dict[str, float]:
    texts = ["气死我了，你们这什么破服务！", "我的订单到哪了", "谢谢" * 200]
    timings = []
    for i in range(repeats):
        start = time.perf_counter()
        model.predict(texts[i % len(texts)])
        timings.append(time.perf_counter() - start)
    timings.sort()
    return {"p50_ms": round(timings[len(timings) // 2] * 1000, 3),
            "p99_ms": round(timings[int(len(timings) * 0.99)] * 1000, 3)}


def main() -> int:
    texts, labels = sentiment_model.read_corpus()
    start = time.perf_counter()
    model = SentimentModel.train(texts, labels)
    train_seconds = round(time.perf_counter() - start, 2)
    heldout = sentiment_model.evaluate(model, *sentiment_model.read_heldout())
    report = {
        "corpus": {"strong_negative": labels.count(STRONG_NEGATIVE),
                   "other": len(labels) - labels.count(STRONG_NEGATIVE)},
        "train_seconds": train_seconds,
        "heldout": {"total": heldout.total, "accuracy": round(heldout.accuracy, 4),
                    "precision": round(heldout.precision, 4), "recall": round(heldout.recall, 4),
                    "errors": [[label, text, round(score, 3)] for label, text, score in heldout.errors]},
        "cross_validation_5fold": cross_validate(),
        "latency": latency(model),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
