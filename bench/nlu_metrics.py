"""Scores for comparing intent classifiers on one held-out file.

Kept apart from the harness so the arithmetic can be checked on hand-made
predictions without a model (tests/bench/test_nlu_baselines.py).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from sklearn.metrics import f1_score

FALLBACK_INTENT = "nlu_fallback"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``: an observed value,
    never an interpolation between two, so p95 of 20 timings is the 19th."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def intent_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict:
    """Accuracy, macro and weighted F1 and fallback rate.

    A fallback prediction is simply a wrong label, as in tests/nlu/test_heldout.
    The F1 averages run over the gold intents only, so a fallback lowers the
    recall of the intent it missed but does not add a class of its own with
    F1 0 (which would penalise a system for having a fallback at all).
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    if not gold:
        raise ValueError("no examples")
    labels = sorted(set(gold))
    right = sum(1 for g, p in zip(gold, predicted) if g == p)
    return {
        "examples": len(gold),
        "accuracy": right / len(gold),
        "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(gold, predicted, labels=labels, average="weighted", zero_division=0)),
        "fallback_rate": sum(1 for p in predicted if p == FALLBACK_INTENT) / len(gold),
    }


def per_intent_f1(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """F1 of every gold intent, for reading where two systems differ."""
    labels = sorted(set(gold))
    scores = f1_score(gold, predicted, labels=labels, average=None, zero_division=0)
    return {label: float(score) for label, score in zip(labels, scores)}


def confusions(gold: Sequence[str], predicted: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent (gold, predicted) pairs among the errors."""
    pairs = Counter((g, p) for g, p in zip(gold, predicted) if g != p)
    return [(g, p, n) for (g, p), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def latency_summary(seconds: Sequence[float]) -> dict:
    """p50/p95 (and mean) of per-message parse times, in milliseconds."""
    return {"p50_ms": round(percentile(seconds, 50) * 1000, 2),
            "p95_ms": round(percentile(seconds, 95) * 1000, 2),
            "mean_ms": round(sum(seconds) / len(seconds) * 1000, 2)}
