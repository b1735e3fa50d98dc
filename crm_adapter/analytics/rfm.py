"""Quantile scores for R, F and M, population-wide and tie-stable.

A value's score is ``1 + floor(bins x (number of population values strictly
below it) / n)``: the "minimum rank" rule. Equal values always share a score
(ties never split by row order), a larger value never scores lower, and the
result does not depend on the order rows arrive in. It is the same as
comparing the value with ``bins - 1`` cut points taken from the sorted
population (`cut_points`), which is how the refresh stores and re-applies it
(``score = 1 + number of cuts strictly below the value``).

Recency is scored on the time of the last order (later is better), which
ranks customers exactly like "fewer days since", but does not drift as the
days pass: only new orders move a customer's R.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def cut_points(values: Iterable[float], bins: int) -> list[float]:
    """The ``bins - 1`` cut points of the population ``values`` (empty for no values)."""
    data = np.sort(np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float))
    n = len(data)
    if n == 0:
        return []
    return [float(data[math.ceil(k * n / bins) - 1]) for k in range(1, bins)]


def score(value: float, cuts: Sequence[float]) -> int:
    """1 + the number of cut points strictly below ``value``."""
    return 1 + sum(1 for c in cuts if c < value)


def scores(values: Sequence[float], cuts: Sequence[float]) -> np.ndarray:
    """Vectorised `score`."""
    return 1 + np.searchsorted(np.asarray(cuts, dtype=float), np.asarray(values, dtype=float), side="left")


def quantile_scores(values: Sequence[float], bins: int = 5) -> list[int]:
    """Scores of ``values`` within their own population (convenience for tests and one-offs)."""
    cuts = cut_points(values, bins)
    return [int(s) for s in scores(values, cuts)]


def tier(r: int | None, f: int | None, m: int | None, core_min: int, potential_min: int) -> str:
    """核心 core / 潜力 potential / 低价值 low on the R+F+M sum; no orders is low."""
    if r is None or f is None or m is None:
        return "low"
    total = r + f + m
    if total >= core_min:
        return "core"
    if total >= potential_min:
        return "potential"
    return "low"
