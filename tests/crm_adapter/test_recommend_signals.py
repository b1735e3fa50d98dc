"""Recommendations from the refresh's product signals (migration 0009, `analytics.products`).

The oracle is the rule as it was computed live before the signals were
stored (`LiveSqlSignals`: the old SQL aggregates, verbatim): on the same
data, with the refresh's tables, `recommend` must give the same answers.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Collection, Iterator

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, aliased

from crm_adapter import CRM, recommend
from crm_adapter.catalogue import PRODUCTS
from crm_adapter.models import Customer, Order, OrderItem, Product, ProductCopurchase, ProductPopularity

STATUSES = ("paid", "shipped", "delivered", "cancelled", "returned", "pending_payment")


class LiveSqlSignals:
    """The signals as `recommend` computed them per request before 0009."""

    def __init__(self, session: Session, now: datetime) -> None:
        self._session = session
        self._now = now

    def _units(self, since: datetime | None) -> Counter[int]:
        query = (
            select(OrderItem.product_id, func.sum(OrderItem.quantity))
            .join(Order, Order.id == OrderItem.order_id)
            .where(Order.status.in_(("paid", "shipped", "delivered")))
            .group_by(OrderItem.product_id)
        )
        if since is not None:
            query = query.where(Order.created_at >= since)
        return Counter({pid: int(n) for pid, n in self._session.execute(query)})

    def popularity(self) -> Counter[int]:
        return self._units(self._now - timedelta(days=90)) or self._units(None)

    def co_purchases(self, bought: Collection[int]) -> Counter[int]:
        """Distinct orders holding the product and any of ``bought`` (the old rule)."""
        other = aliased(OrderItem)
        rows = self._session.execute(
            select(other.product_id, func.count(func.distinct(other.order_id)))
            .join(OrderItem, (OrderItem.order_id == other.order_id) & (OrderItem.product_id != other.product_id))
            .where(OrderItem.product_id.in_(list(bought)))
            .group_by(other.product_id)
        )
        return Counter({pid: int(n) for pid, n in rows})

    def pair_sums(self, bought: Collection[int]) -> Counter[int]:
        """Per product of ``bought``, the distinct orders holding both, summed (the rule now)."""
        total: Counter[int] = Counter()
        for pid in bought:
            total.update(self.co_purchases([pid]))
        return total


def _catalogue(session: Session) -> list[Product]:
    products = [
        Product(id=i + 1, sku=p.sku, name=p.name, aliases="|".join(p.aliases), category=p.category, price=p.price,
                repurchase_days=p.repurchase_days, warranty_months=p.warranty_months, description=p.description,
                active=True)
        for i, p in enumerate(PRODUCTS)
    ]
    session.add_all(products)
    return products


def _populate(crm: CRM, now: datetime, seed: int, max_basket: int, customers: int = 40, orders: int = 400) -> None:
    """Customers with long-tailed histories over 400 days: mixed statuses,
    quantities, repeated lines, baskets of up to ``max_basket`` distinct
    products; a few products deactivated."""
    rng = random.Random(seed)
    with Session(crm.engine, future=True) as session:
        products = _catalogue(session)
        for cid in range(1, customers + 1):
            session.add(Customer(id=cid, name=f"顾客{cid}", created_at=now - timedelta(days=500)))
        session.flush()
        for oid in range(1, orders + 1):
            when = now - timedelta(days=rng.uniform(0, 400), microseconds=rng.randrange(1_000_000))
            basket = rng.sample(products[:12], rng.randint(1, max_basket))
            order = Order(id=oid, order_number=f"{oid:012d}", customer_id=rng.randint(1, customers),
                          status=rng.choice(STATUSES), total=10.0, address="x", created_at=when, updated_at=when)
            lines = basket + ([basket[0]] if rng.random() < 0.1 else [])  # the same product twice in one order
            order.items = [OrderItem(product_id=p.id, sku=p.sku, name=p.name, quantity=rng.choice((1, 1, 1, 2, 5)),
                                     unit_price=p.price) for p in lines]
            session.add(order)
        for p in products[9:11]:
            p.active = False
        session.commit()


def _answers(crm: CRM, customers: int) -> dict[tuple[object, ...], list[str]]:
    out = {}
    for cid in [None, *range(1, customers + 1)]:
        for category in (None, "美妆个护", "家用电器"):
            out[(cid, category)] = [p.sku for p in crm.recommend(cid, limit=6, category=category)]
    return out


def _oracle(crm: CRM, now: datetime, customers: int) -> dict[tuple[object, ...], list[str]]:
    out = {}
    with Session(crm.engine, future=True) as session:
        signals = LiveSqlSignals(session, now)
        for cid in [None, *range(1, customers + 1)]:
            for category in (None, "美妆个护", "家用电器"):
                found = recommend.recommend_products(session, cid, 6, category, now, signals)
                out[(cid, category)] = [p.sku for p in found]
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stored_signals_give_the_live_rules_answers(empty_crm: CRM, clock, seed: int) -> None:
    """Baskets of at most two distinct products, where "orders holding any of
    the customer's products" and the sum over pairs are the same number."""
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, seed, max_basket=2)
    expected = _oracle(empty_crm, now, 40)
    empty_crm.refresh_analytics(full=True)
    with Session(empty_crm.engine, future=True) as session:
        assert recommend.stored_signals(session) is not None
    assert _answers(empty_crm, 40) == expected


def test_stored_signals_are_the_pair_sums(empty_crm: CRM, clock) -> None:
    """Larger baskets: popularity exactly as before, co-purchase as the sum
    over the customer's products of the distinct orders holding both."""
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, 4, max_basket=5)
    empty_crm.refresh_analytics(full=True)
    with Session(empty_crm.engine, future=True) as session:
        live = LiveSqlSignals(session, now)
        stored = recommend.stored_signals(session)
        assert stored is not None
        assert stored.popularity() == live.popularity()
        for bought in ([1], [2, 3], [1, 4, 5, 6], list(range(1, 13))):
            assert stored.co_purchases(bought) == live.pair_sums(bought)
        # The old rule counted an order holding several of them once: here they differ.
        assert stored.co_purchases([1, 2, 3]) != live.co_purchases([1, 2, 3])


def test_never_refreshed_small_data_is_computed_live_as_the_refresh_would(empty_crm: CRM, clock) -> None:
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, 5, max_basket=4)
    before = _answers(empty_crm, 40)
    with Session(empty_crm.engine, future=True) as session:
        assert recommend.stored_signals(session) is None
    empty_crm.refresh_analytics(full=True)
    assert _answers(empty_crm, 40) == before


def test_never_refreshed_large_data_answers_without_population_signals(
    empty_crm: CRM, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, 6, max_basket=3)
    monkeypatch.setattr(recommend, "LIVE_MAX_ORDER_LINES", 10)
    anonymous = [p.sku for p in empty_crm.recommend(None, limit=40)]
    active = sorted(p.sku for p in PRODUCTS if p.sku not in {PRODUCTS[9].sku, PRODUCTS[10].sku})
    assert anonymous == active  # no popularity: SKU order
    assert empty_crm.recommend(1, limit=3)


@pytest.fixture
def statements(empty_crm: CRM) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(empty_crm.engine, "before_cursor_execute", record)
    yield seen
    event.remove(empty_crm.engine, "before_cursor_execute", record)


def test_after_a_refresh_a_request_reads_no_other_customers_order_lines(
    empty_crm: CRM, clock, statements: list[str]
) -> None:
    """Per call: the catalogue, the customer's own orders, the signal tables.
    Before 0009 every call (co-purchase) and every clock hour (popularity)
    aggregated all order lines."""
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, 7, max_basket=3)
    empty_crm.refresh_analytics(full=True)
    statements.clear()
    for cid in (None, 1, 2, 3):
        empty_crm.recommend(cid)
        clock.advance(hours=1)
    touching = [s for s in statements if "order_items" in s]
    assert touching and all("customer_id" in s for s in touching), touching


def test_signals_are_as_fresh_as_the_last_refresh(empty_crm: CRM, clock) -> None:
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, 8, max_basket=2)
    empty_crm.refresh_analytics(full=True)
    with Session(empty_crm.engine, future=True) as session:
        # A product new since the refresh, and a heavily sold one switched off.
        session.add(Product(id=99, sku="SKU9901", name="新品", aliases="", category="美妆个护", price=9.9,
                            repurchase_days=30, warranty_months=0, description="", active=True))
        top = session.execute(
            select(ProductPopularity.product_id).order_by(ProductPopularity.units_recent.desc()).limit(1)
        ).scalar_one()
        session.get(Product, top).active = False
        top_sku = session.get(Product, top).sku
        session.commit()
    anonymous = [p.sku for p in empty_crm.recommend(None, limit=50)]
    assert top_sku not in anonymous
    assert anonymous[-1] == "SKU9901"  # never sold, as far as the tables know
    assert "SKU9901" in [p.sku for p in empty_crm.recommend(1, limit=50, category="美妆个护")]

    # Orders since the refresh count from the next one (incremental included).
    with Session(empty_crm.engine, future=True) as session:
        order = Order(id=10_000, order_number="999999999999", customer_id=1, status="paid", total=1.0, address="x",
                      created_at=now, updated_at=now)
        order.items = [OrderItem(product_id=99, sku="SKU9901", name="新品", quantity=500, unit_price=9.9)]
        session.add(order)
        session.commit()
    assert empty_crm.recommend(None, limit=50)[-1].sku == "SKU9901"
    clock.advance(minutes=5)
    assert empty_crm.refresh_analytics().kind == "incremental"
    assert empty_crm.recommend(None, limit=1)[0].sku == "SKU9901"


def _tables(crm: CRM) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    with Session(crm.engine, future=True) as session:
        popularity = session.execute(
            select(ProductPopularity.product_id, ProductPopularity.units_recent, ProductPopularity.units_all)
            .order_by(ProductPopularity.product_id)
        ).all()
        pairs = session.execute(
            select(ProductCopurchase.product_id, ProductCopurchase.other_id, ProductCopurchase.orders)
            .order_by(ProductCopurchase.product_id, ProductCopurchase.other_id)
        ).all()
    return [tuple(r) for r in popularity], [tuple(r) for r in pairs]


def test_incremental_and_full_runs_store_the_same_signals(empty_crm: CRM, clock) -> None:
    """The full run reuses the orders it read for the customers; the
    incremental one reads them itself: the same numbers either way."""
    now = clock().replace(tzinfo=None)
    _populate(empty_crm, now, 9, max_basket=4)
    empty_crm.refresh_analytics(full=True)
    clock.advance(days=30)  # the window slides past some orders
    assert empty_crm.refresh_analytics().kind == "incremental"
    incremental = _tables(empty_crm)
    empty_crm.refresh_analytics(full=True)
    assert _tables(empty_crm) == incremental
    assert incremental[0] and incremental[1]
