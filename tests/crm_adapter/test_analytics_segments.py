"""K-means segments: separable groups are found, labelled, numbered by value, stored, and stable."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.analytics.segments import segment
from crm_adapter.models import CustomerMetrics
from tests.crm_adapter.test_analytics_model import NOW, add_customer, add_order, shop  # noqa: F401  (fixture)


def _shop_with_three_kinds(crm: CRM) -> None:
    cid = 0
    for _ in range(12):  # frequent big spenders, bought last week
        cid += 1
        add_customer(crm, cid)
        for days in range(7, 300, 25):
            add_order(crm, cid, days + cid % 3, 900.0 + cid)
    for _ in range(12):  # occasional small buyers, recent
        cid += 1
        add_customer(crm, cid)
        for days in (10 + cid % 5, 200):
            add_order(crm, cid, days, 40.0 + cid)
    for _ in range(12):  # one small order long ago: asleep
        cid += 1
        add_customer(crm, cid)
        add_order(crm, cid, 330 + cid % 7, 60.0)
    crm.refresh_analytics()


def test_segments_find_the_groups_and_store_them(shop: CRM) -> None:
    _shop_with_three_kinds(shop)
    with Session(shop.engine, future=True) as session:
        first = segment(session, NOW, k_range=(2, 3, 4), seed=7)
        clusters = dict(session.execute(select(CustomerMetrics.customer_id, CustomerMetrics.cluster)).all())
    assert first is not None and first.k == 3 and first.silhouette > 0.5
    assert [p.size for p in first.profiles] == [12, 12, 12]
    top = first.profiles[0]
    assert top.cluster == 0 and top.label == "高频高额"            # numbered by value
    assert top.mean_monetary == max(p.mean_monetary for p in first.profiles)
    assert any(p.label.startswith("沉睡") for p in first.profiles)
    assert len({clusters[c] for c in range(1, 13)}) == 1 and clusters[1] == 0
    assert all(v is not None for v in clusters.values())
    with Session(shop.engine, future=True) as session:
        again = segment(session, NOW, k_range=(2, 3, 4), seed=7, store=False)
    assert again == first                                          # same data, same answer


def test_too_few_buyers_is_no_segmentation(shop: CRM) -> None:
    add_customer(shop, 1)
    add_order(shop, 1, 5, 100.0)
    shop.refresh_analytics()
    with Session(shop.engine, future=True) as session:
        assert segment(session, NOW) is None
