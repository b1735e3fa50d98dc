"""Product recommendation, first cut: explainable rules, no model.

For a known customer, a product scores for

* its category's share of what the customer bought (habits carry over),
* how often other customers bought it together with what this customer
  bought (co-purchase: 净化器 -> 滤芯, 牙刷 -> 刷头),
* being a consumable whose repurchase cycle has run out (replenishment),
* a little for overall popularity (to break ties sensibly),

and is left out when the customer bought it recently: durables ever bought
(nobody needs a second air purifier suggested), consumables bought within
their repurchase cycle. Unknown customers, and any shortfall, get the most
popular products of the last 90 days. Ties break on SKU, so answers are
stable — the same question gets the same answer.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from .models import Order, OrderItem, Product

POPULAR_WINDOW = timedelta(days=90)
_COUNTED_STATUSES = ("paid", "shipped", "delivered")


def popularity(session: Session, now: datetime) -> Counter[int]:
    """Units sold per product over the last 90 days (all time if none).

    An aggregate over every order line, so callers cache it (`CRM.recommend`
    keeps one per clock hour): it moves slowly and costs ~80 ms on the demo data.
    """
    def counts(since: Optional[datetime]) -> Counter[int]:
        query = (
            select(OrderItem.product_id, func.sum(OrderItem.quantity))
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.status.in_(_COUNTED_STATUSES))
            .group_by(OrderItem.product_id)
        )
        if since is not None:
            query = query.where(Order.created_at >= since)
        return Counter({pid: int(n) for pid, n in session.execute(query)})

    recent = counts(now - POPULAR_WINDOW)
    return recent if recent else counts(None)


def _ranked_popular(products: list[Product], popularity: Counter[int]) -> list[Product]:
    return sorted(products, key=lambda p: (-popularity.get(p.id, 0), p.sku))


def recommend_products(
    session: Session,
    customer_id: Optional[int],
    limit: int,
    category: Optional[str],
    now: datetime,
    popularity: Counter[int],
) -> list[Product]:
    """Up to ``limit`` active products, best first (see module docstring);
    ``popularity`` is what `popularity` returned for about ``now``."""
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

    other = aliased(OrderItem)
    co_counts = Counter(
        {
            pid: int(n)
            for pid, n in session.execute(
                select(other.product_id, func.count(func.distinct(other.order_id)))
                .join(OrderItem, (OrderItem.order_id == other.order_id) & (OrderItem.product_id != other.product_id))
                .where(OrderItem.product_id.in_(list(last_bought)))
                .group_by(other.product_id)
            )
        }
    )
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
    ranked = sorted(eligible, key=lambda p: (-score(p), p.sku))
    return ranked[:limit]
