"""Product recommendation, first cut: explainable rules, no model.

For a known customer, a product scores for

* its category's share of what the customer bought (habits carry over),
* how often it was bought together with what this customer bought
  (co-purchase: 净化器 -> 滤芯, 牙刷 -> 刷头): for each product of theirs,
  the orders holding both, summed -- an order holding two of their products
  counts twice, which is what a table of pairs gives (until 2026-11 it
  counted once: distinct orders holding any of them),
* being a consumable whose repurchase cycle has run out (replenishment),
* a little for overall popularity (to break ties sensibly),

and is left out when the customer bought it recently: durables ever bought
(nobody needs a second air purifier suggested), consumables bought within
their repurchase cycle. Unknown customers, and any shortfall, get the most
popular products of the last 90 days. Ties break on SKU, so answers are
stable — the same question gets the same answer.

Popularity and co-purchase counts are population-wide aggregates over every
order line; the analytics refresh precomputes them (`analytics.products`,
migration 0009) and a call reads them: they are as fresh as the last
refresh (daily, say): orders since then, and the window sliding since
then, show up after the next one. A product added since the refresh counts
as never sold (popularity and co-purchases 0) but is recommended on the
customer's own habits; a deactivated one is never a candidate, whatever
the tables say. Before the first refresh see `live_signals`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Collection, Mapping, Optional, Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .analytics import products as product_stats
from .masking import guard_logger
from .models import Order, OrderItem, Product, ProductCopurchase

log = guard_logger(__name__)

#: Below this many order lines (judged by the highest line id), a database
#: whose analytics were never refreshed gets its signals computed live
#: (about a second at this size); above it, recommendations go without
#: popularity and co-purchase until the first refresh instead of making a
#: customer wait a minute.
LIVE_MAX_ORDER_LINES = 200_000


class Signals(Protocol):
    """Where a recommendation gets its population-wide evidence from."""

    def popularity(self) -> Counter[int]:
        """Units sold per product (90-day window, all time when it is empty)."""

    def co_purchases(self, bought: Collection[int]) -> Counter[int]:
        """Per other product: orders holding it and one of ``bought``, summed over ``bought``."""


def _popularity(recent: Mapping[int, int], overall: Mapping[int, int]) -> Counter[int]:
    """The window's units, or all time's when the window sold nothing."""
    chosen = recent if any(recent.values()) else overall
    return Counter({pid: n for pid, n in chosen.items() if n})


class StoredSignals:
    """The refresh's tables (`analytics.products`): as fresh as the last refresh.

    A product added since has no row and counts 0 (it can still be
    recommended, on category habits, and last among equally popular ones);
    co-purchases are read by primary key for the customer's own products
    only, so a call costs the same at any order history size.
    """

    def __init__(self, session: Session, recent: Mapping[int, int], overall: Mapping[int, int]) -> None:
        self._session = session
        self._popular = _popularity(recent, overall)

    def popularity(self) -> Counter[int]:
        return self._popular

    def co_purchases(self, bought: Collection[int]) -> Counter[int]:
        t = ProductCopurchase
        rows = self._session.execute(
            select(t.other_id, func.sum(t.orders)).where(t.product_id.in_(list(bought))).group_by(t.other_id)
        )
        return Counter({pid: int(n) for pid, n in rows})


@dataclass(frozen=True)
class ComputedSignals:
    """Signals computed in memory (`analytics.products.compute`), for a
    database the refresh has not written yet; the same numbers the refresh
    would store at that moment."""

    stats: product_stats.ProductStats

    def popularity(self) -> Counter[int]:
        ids = self.stats.product_ids.tolist()
        return _popularity(dict(zip(ids, self.stats.units_recent.tolist())),
                           dict(zip(ids, self.stats.units_all.tolist())))

    def co_purchases(self, bought: Collection[int]) -> Counter[int]:
        s = self.stats
        mine = np.isin(s.pair_product, np.fromiter(bought, dtype=np.int64))
        summed = np.bincount(s.pair_other[mine], weights=s.pair_orders[mine]).astype(np.int64)
        return Counter({pid: int(summed[pid]) for pid in np.flatnonzero(summed).tolist()})


class NoSignals:
    """Neither popularity nor co-purchases: a large database before its first refresh."""

    def popularity(self) -> Counter[int]:
        return Counter()

    def co_purchases(self, bought: Collection[int]) -> Counter[int]:
        return Counter()


def stored_signals(session: Session) -> Optional[Signals]:
    """The refresh's signals, or None when no refresh has written them yet."""
    found = product_stats.stored(session)
    return None if found is None else StoredSignals(session, *found)


def live_signals(session: Session, now: datetime) -> Signals:
    """Signals for a database never refreshed (e.g. right after `crm_adapter.seed`).

    Small data (the demo, tests): computed now, from every order line, by
    the refresh's own code, so the answers are those a refresh would give.
    Large data: none, and a warning to run ``python -m crm_adapter.analytics
    refresh`` -- a chat request must not pay a minute-long aggregate. Seeding
    does not refresh instead: the seed is also the tests' template, whose
    analytics tables they expect empty.
    """
    lines = session.execute(select(func.max(OrderItem.id))).scalar() or 0
    if lines > LIVE_MAX_ORDER_LINES:
        log.warning("recommendations without popularity and co-purchases: %s order lines and no analytics "
                    "refresh yet (run python -m crm_adapter.analytics refresh)", lines)
        return NoSignals()
    return ComputedSignals(product_stats.compute(session, now))


def _ranked_popular(products: list[Product], popularity: Counter[int]) -> list[Product]:
    return sorted(products, key=lambda p: (-popularity.get(p.id, 0), p.sku))


def recommend_products(
    session: Session,
    customer_id: Optional[int],
    limit: int,
    category: Optional[str],
    now: datetime,
    signals: Signals,
) -> list[Product]:
    """Up to ``limit`` active products, best first (see module docstring).

    Per call: the active catalogue, the customer's own order lines (through
    their index) and ``signals`` for the products they bought -- nothing
    that grows with other customers' history."""
    popularity = signals.popularity()
    query = select(Product).where(Product.active.is_(True))
    if category is not None:
        query = query.where(Product.category == category)
    candidates = list(session.execute(query).scalars())
    if customer_id is None:
        return _ranked_popular(candidates, popularity)[:limit]

    history = session.execute(
        select(OrderItem.product_id, func.max(Order.created_at), func.sum(OrderItem.quantity))
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.customer_id == customer_id, Order.status != "cancelled")
        .group_by(OrderItem.product_id)
    ).all()
    if not history:
        return _ranked_popular(candidates, popularity)[:limit]

    products_by_id = {p.id: p for p in session.execute(select(Product)).scalars()}
    last_bought = {pid: last for pid, last, _ in history}
    category_counts: Counter[str] = Counter()
    for pid, _, quantity in history:
        category_counts[products_by_id[pid].category] += int(quantity)
    total_bought = sum(category_counts.values())

    co_counts = signals.co_purchases(list(last_bought))
    max_co = max(co_counts.values(), default=0) or 1
    max_pop = max(popularity.values(), default=0) or 1

    def bought_recently(p: Product) -> bool:
        last = last_bought.get(p.id)
        if last is None:
            return False
        if p.repurchase_days is None:
            return True  # a durable: once is enough
        return now - last < timedelta(days=p.repurchase_days)

    def score(p: Product) -> float:
        value = 3.0 * category_counts.get(p.category, 0) / total_bought
        value += 2.0 * co_counts.get(p.id, 0) / max_co
        value += 0.5 * popularity.get(p.id, 0) / max_pop
        if p.id in last_bought:  # eligible, so a consumable that is due again
            value += 1.5
        return value

    eligible = [p for p in candidates if not bought_recently(p)]
    if not eligible and category is not None:
        # Asked for a category whose every product they already own ("推荐个手机"
        # from someone who bought all five): answer from it, best first, rather
        # than say nothing of the kind exists.
        eligible = candidates
    ranked = sorted(eligible, key=lambda p: (-score(p), p.sku))
    return ranked[:limit]
