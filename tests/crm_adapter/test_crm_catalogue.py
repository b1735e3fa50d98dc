"""Catalogue lookups and recommendations."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

import pytest
from sqlalchemy.orm import Session

from crm_adapter import CRM, views
from crm_adapter.catalogue import PRODUCTS
from crm_adapter.models import Customer, Order, OrderItem, Product

ZHANG, LINA = 1, 2


def test_list_products_is_the_catalogue(crm: CRM) -> None:
    products = crm.list_products()
    assert len(products) == len(PRODUCTS)
    assert all(isinstance(p, views.ProductView) for p in products)
    headphones = next(p for p in products if p.sku == "SKU1003")
    assert headphones.name == "声浪降噪耳机"
    assert headphones.aliases == ("降噪耳机", "声浪耳机", "耳机", "蓝牙耳机")
    assert (headphones.category, headphones.price, headphones.warranty_months) == ("手机数码", 599.0, 12)


@pytest.mark.parametrize(
    "text, first",
    [
        ("降噪耳机多少钱", "SKU1003"),
        ("星辰X5手机有货吗", "SKU1001"),
        ("x5手机续航怎么样", "SKU1001"),  # aliases match case-insensitively
        ("耳机", "SKU1003"),  # a fragment of a name
        ("推荐个耳机", "SKU1003"),  # the kind of product, inside a sentence
        ("给我推荐一款平板", "SKU1002"),
        ("有什么好喝的茶叶", "SKU4003"),
        ("滤芯多久换一次", "SKU2002"),
        ("SKU8001", "SKU8001"),
    ],
)
def test_find_products_in_free_text(crm: CRM, text: str, first: str) -> None:
    found = crm.find_products(text=text)
    assert found and found[0].sku == first


def test_find_products_prefers_the_longest_match(crm: CRM) -> None:
    # "净化器滤芯" names the filter; "净化器" alone would be the purifier.
    assert crm.find_products(text="净化器滤芯还有吗")[0].sku == "SKU2002"


def test_find_products_by_category_and_alias(crm: CRM) -> None:
    pets = crm.find_products(category="宠物用品", limit=10)
    assert {p.sku for p in pets} == {"SKU8001", "SKU8002", "SKU8003"}
    assert [p.sku for p in crm.find_products(category="宠物", limit=10)] == [p.sku for p in pets]
    assert len(crm.find_products(category="手机数码", limit=2)) == 2


def test_find_products_category_word_in_text(crm: CRM) -> None:
    found = crm.find_products(text="你们有什么宠物用品", limit=10)
    assert {p.category for p in found} == {"宠物用品"}


def test_find_products_nothing_matches(crm: CRM) -> None:
    assert crm.find_products(text="今天天气怎么样") == []
    assert crm.find_products(category="汽车用品") == []
    assert crm.find_products(text="耳机", category="宠物用品") == []


def test_recommend_for_anonymous_is_popular_and_stable(crm: CRM) -> None:
    first = crm.recommend(None)
    assert len(first) == 3
    assert crm.recommend(None) == first
    assert crm.recommend(424242) == first  # unknown ids are served as anonymous


def test_recommend_respects_category_and_limit(crm: CRM) -> None:
    pets = crm.recommend(ZHANG, limit=2, category="宠物")
    assert len(pets) == 2 and {p.category for p in pets} == {"宠物用品"}
    assert crm.recommend(ZHANG, category="汽车用品") == []
    assert len(crm.recommend(ZHANG, limit=5)) == 5


def test_a_category_whose_every_product_was_bought_is_still_answered_from(crm: CRM) -> None:
    # Zhang bought every digital product (durables, so none is "due" again); asked
    # for phones, he gets that category's products, not an empty answer.
    digital = {p.sku for p in crm.find_products(category="手机数码", limit=20)}
    suggestions = crm.recommend(ZHANG, limit=3, category="手机")
    assert len(suggestions) == 3 and {p.sku for p in suggestions} <= digital


def test_recommend_skips_durables_already_bought(crm: CRM) -> None:
    bought_durables = {"SKU1001", "SKU1002", "SKU1003", "SKU1004", "SKU1005", "SKU2001", "SKU2004",
                       "SKU6001"}
    suggestions = crm.recommend(ZHANG, limit=10)
    assert len(suggestions) == 10
    assert not bought_durables & {p.sku for p in suggestions}


def _history(session: Session, customer_id: int, baskets: Sequence[Sequence[str]], when: datetime) -> None:
    by_sku = {p.sku: p for p in session.query(Product)}
    for index, basket in enumerate(baskets):
        order = Order(order_number=f"{customer_id:04d}{index:08d}", customer_id=customer_id,
                      status="delivered", total=sum(by_sku[s].price for s in basket), address="x",
                      created_at=when, delivered_at=when)
        order.items = [OrderItem(product_id=by_sku[s].id, sku=s, name=by_sku[s].name, quantity=1,
                                 unit_price=by_sku[s].price) for s in basket]
        session.add(order)


def test_recommend_uses_co_purchases_and_repurchase_cycles(empty_crm: CRM, clock) -> None:
    now = clock().replace(tzinfo=None)
    with Session(empty_crm.engine, future=True) as session:
        for index, item in enumerate(PRODUCTS):
            session.add(Product(id=index + 1, sku=item.sku, name=item.name, aliases="|".join(item.aliases),
                                category=item.category, price=item.price,
                                repurchase_days=item.repurchase_days,
                                warranty_months=item.warranty_months, description=item.description))
        for cid in (1, 2, 3):
            session.add(Customer(id=cid, name=f"顾客{cid}", created_at=now))
        session.flush()
        # Others buy the purifier with its filter; customer 3 buys only the purifier.
        _history(session, 1, [["SKU2001", "SKU2002"]] * 3, now - timedelta(days=100))
        _history(session, 2, [["SKU2001", "SKU2002"], ["SKU4001"]] * 2, now - timedelta(days=50))
        _history(session, 3, [["SKU2001"]], now - timedelta(days=10))
        session.commit()

    third = [p.sku for p in empty_crm.recommend(3, limit=3)]
    assert third[0] == "SKU2002"
    assert "SKU2001" not in third

    # Customer 1's filters are 100 days old, within their 180-day cycle: not due yet.
    assert "SKU2002" not in [p.sku for p in empty_crm.recommend(1, limit=10)]
    clock.advance(days=90)  # now 190 days: the filter is due again
    assert empty_crm.recommend(1, limit=1)[0].sku == "SKU2002"
