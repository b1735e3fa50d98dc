"""Optional behavioural segments: K-means on standardised RFM features.

Features per buyer (customers with at least one counted order): log(1 +
days since last order), orders in the window, log(1 + window spend), log(1 +
average order value). Logs tame the long tail (a few customers spend 100x the
median); standardising puts days, counts and yuan on one scale. k is chosen
by the silhouette score over ``k_range`` (computed on a seeded sample of at
most ``sample`` rows, silhouette being quadratic), and the final model is fit
on all rows with the same seed: same data, same clusters.

Labels are read off each cluster's medians against the population's:
高频/低频 (orders), 高额/低额 (spend), and 沉睡 when its typical customer has
been silent longer than the population's typical one by half again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

import numpy as np
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from ..models import CustomerMetrics
from .daynum import to_day


@dataclass(frozen=True)
class SegmentProfile:
    cluster: int
    label: str
    size: int
    share: float
    mean_recency_days: float
    mean_frequency: float
    mean_monetary: float
    mean_aov: float
    mean_r_score: float
    mean_f_score: float
    mean_m_score: float


@dataclass(frozen=True)
class Segmentation:
    k: int
    silhouette: float
    profiles: tuple[SegmentProfile, ...]


def _label(freq: float, money: float, recency: float, pop_freq: float, pop_money: float, pop_recency: float) -> str:
    label = ("高频" if freq > pop_freq else "低频") + ("高额" if money > pop_money else "低额")
    if recency > 1.5 * pop_recency:
        label = "沉睡" + label
    return label


def segment(
    session: Session,
    now: datetime,
    *,
    k_range: Sequence[int] = (2, 3, 4, 5, 6),
    seed: int = 42,
    sample: int = 5000,
    store: bool = True,
) -> Optional[Segmentation]:
    """Cluster the stored buyers; None when there are too few to cluster."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    rows = session.execute(
        select(
            CustomerMetrics.customer_id,
            CustomerMetrics.last_order_day,
            CustomerMetrics.frequency,
            CustomerMetrics.monetary,
            CustomerMetrics.r_score,
            CustomerMetrics.f_score,
            CustomerMetrics.m_score,
        )
        .where(CustomerMetrics.order_count > 0)
        .order_by(CustomerMetrics.customer_id)
    ).all()
    if len(rows) < max(k_range) * 2:
        return None
    data = np.array([[float(v) for v in row[1:]] for row in rows])
    ids = [row[0] for row in rows]
    recency = np.maximum(to_day(now) - data[:, 0], 0.0)
    freq, money = data[:, 1], data[:, 2]
    aov = np.where(freq > 0, money / np.maximum(freq, 1), 0.0)
    features = np.column_stack([np.log1p(recency), freq, np.log1p(money), np.log1p(aov)])
    scaled = StandardScaler().fit_transform(features)
    rng = np.random.RandomState(seed)
    pick = rng.choice(len(scaled), size=min(sample, len(scaled)), replace=False)
    best_k, best_score = k_range[0], -2.0
    for k in k_range:
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(scaled[pick])
        if len(set(model.labels_)) < 2:
            continue
        value = float(silhouette_score(scaled[pick], model.labels_, random_state=seed))
        if value > best_score + 1e-9:
            best_k, best_score = k, value
    labels = KMeans(n_clusters=best_k, n_init=10, random_state=seed).fit_predict(scaled)
    # Number clusters by descending mean spend, so cluster 0 is always the most valuable.
    order = sorted(range(best_k), key=lambda c: -float(money[labels == c].mean()))
    renumber = {old: new for new, old in enumerate(order)}
    labels = np.array([renumber[int(c)] for c in labels])
    pop_f, pop_m, pop_r = float(np.median(freq)), float(np.median(money)), float(np.median(recency))
    profiles = []
    for c in range(best_k):
        mask = labels == c
        profiles.append(
            SegmentProfile(
                cluster=c,
                label=_label(float(np.median(freq[mask])), float(np.median(money[mask])),
                             float(np.median(recency[mask])), pop_f, pop_m, pop_r),
                size=int(mask.sum()),
                share=round(float(mask.mean()), 4),
                mean_recency_days=round(float(recency[mask].mean()), 1),
                mean_frequency=round(float(freq[mask].mean()), 2),
                mean_monetary=round(float(money[mask].mean()), 2),
                mean_aov=round(float(aov[mask].mean()), 2),
                mean_r_score=round(float(data[mask, 3].mean()), 2),
                mean_f_score=round(float(data[mask, 4].mean()), 2),
                mean_m_score=round(float(data[mask, 5].mean()), 2),
            )
        )
    if store:
        table = CustomerMetrics.__table__
        session.execute(update(table).values(cluster=None))
        session.execute(
            update(table).where(table.c.customer_id == bindparam("cid")).values(cluster=bindparam("cl")),
            [{"cid": cid, "cl": int(c)} for cid, c in zip(ids, labels)],
        )
        session.commit()
    return Segmentation(best_k, round(best_score, 4), tuple(profiles))
