"""CRM analytics at scale (a benchmark, not a test): ``python -m bench.crm_scale --customers 100000``.

Builds a fresh SQLite CRM with N customers and 10 x N orders (bulk
executemany inserts, a long-tail mix of buyers), then measures: a full
analytics refresh, an incremental refresh after 1 % of customers changed
(new orders), ``customer_profile`` p50/p95 over 10,000 random customers, and
``recommend()`` p50/p95 over 1,000 (``--profiles`` / ``--recommends``). Prints JSON.

``--url`` measures a population made before (``bench.care_sweep`` leaves one):
it is brought to the current schema first (``migrate_s``, not part of any
refresh time), and ``--fresh-analytics`` empties the analytics tables so that
the full refresh is a first one, as on a freshly generated database.

PostgreSQL at a million customers: generating through `generate` (Core
inserts) takes about half an hour there; ``python -m bench.crm_copy``
loads the same population from a SQLite file with COPY instead (12 min
for 1,000,000 customers / 10,000,000 orders on a busy 2-core machine), and
``--url`` then measures it.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update

from crm_adapter import CRM
from crm_adapter.catalogue import PRODUCTS
from crm_adapter.models import AnalyticsRun, Customer, CustomerMetrics, CustomerSegmentChange, Order, OrderItem, Product


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def generate(crm: CRM, customers: int, now: datetime, seed: int) -> float:
    rng = random.Random(seed)
    started = time.perf_counter()
    crm.create_schema()
    with crm.engine.begin() as conn:
        conn.execute(insert(Product.__table__), [
            {"id": i + 1, "sku": p.sku, "name": p.name, "aliases": "|".join(p.aliases), "category": p.category,
             "price": p.price, "repurchase_days": p.repurchase_days, "warranty_months": p.warranty_months,
             "description": p.description, "active": True}
            for i, p in enumerate(PRODUCTS)
        ])
    products = list(range(1, len(PRODUCTS) + 1))
    order_id = 0
    batch = 50_000
    for start in range(0, customers, batch):
        cust_rows, order_rows, item_rows = [], [], []
        for cid in range(start + 1, min(start + batch, customers) + 1):
            created = now - timedelta(days=rng.uniform(30, 1500))
            cust_rows.append({"id": cid, "name": "客户", "phone": None, "member_level": "普通会员", "points": 0,
                              "points_expiring": 0, "tier": "low", "lifecycle_stage": "potential",
                              "total_spent": 0.0, "created_at": created, "timezone": "Asia/Shanghai", "deleted": False})
        # 10 orders per customer on average, long-tailed: many with few, few with many.
        n_orders = (customers - start if customers - start < batch else batch) * 10
        first = start + 1
        last = min(start + batch, customers)
        for _ in range(n_orders):
            cid = min(first + int(rng.paretovariate(1.2) * 3) % (last - first + 1), last)
            cid = rng.randint(first, last) if rng.random() < 0.5 else cid
            order_id += 1
            when = now - timedelta(days=rng.uniform(0, 1400) ** rng.uniform(0.8, 1.0))
            status = rng.choices(("delivered", "paid", "shipped", "cancelled", "returned"), (80, 5, 5, 7, 3))[0]
            total = round(rng.lognormvariate(5, 1), 2)
            order_rows.append({"id": order_id, "order_number": f"{order_id:012d}", "customer_id": cid,
                               "status": status, "total": total, "address": "上海市浦东新区张江路1号",
                               "created_at": when, "updated_at": when})
            item_rows.append({"order_id": order_id, "product_id": rng.choice(products), "sku": "SKU", "name": "商品",
                              "quantity": 1, "unit_price": total})
        with crm.engine.begin() as conn:
            conn.execute(insert(Customer.__table__), cust_rows)
            conn.execute(insert(Order.__table__), order_rows)
            conn.execute(insert(OrderItem.__table__), item_rows)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("var/bench/crm_scale.json"))
    parser.add_argument("--profiles", type=int, default=10_000, help="customer_profile lookups to time")
    parser.add_argument("--recommends", type=int, default=1_000,
                        help="recommend() calls to time (each takes seconds at a million customers)")
    parser.add_argument("--url", help="a database that already holds this population (e.g. left by "
                                      "bench.care_sweep --url), used once; PostgreSQL or SQLite")
    parser.add_argument("--fresh-analytics", action="store_true",
                        help="with --url: first empty customer_metrics, customer_segment_changes and "
                             "analytics_runs and set every customer's tier to low, so that the full refresh "
                             "is a first one, as on a generated database")
    args = parser.parse_args()
    now = datetime(2026, 11, 1, 12, 0, 0)
    clock = Clock(now)
    if args.url:
        crm = CRM(args.url, clock=clock)
        t0 = time.perf_counter()
        crm.create_schema()  # a population left by an older Kefu gets this one's indexes
        migrate_s = round(time.perf_counter() - t0, 2)
        if args.fresh_analytics:
            with crm.engine.begin() as conn:
                for table in (CustomerSegmentChange, CustomerMetrics, AnalyticsRun):
                    conn.execute(delete(table.__table__))
                conn.execute(update(Customer.__table__).values(tier="low"))
        with crm.engine.connect() as conn:
            args.customers = conn.execute(select(func.count()).select_from(Customer)).scalar_one()
        out: dict[str, object] = {"customers": args.customers, "db": args.url.split("@")[-1], "generate_s": None,
                                  "migrate_s": migrate_s, "fresh_analytics": args.fresh_analytics}
        with crm.engine.connect() as conn:
            out["orders"] = conn.execute(select(func.count()).select_from(Order)).scalar_one()
    else:
        folder = args.dir or Path(tempfile.mkdtemp(prefix="kefu-crm-scale-"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "crm.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        crm = CRM(f"sqlite:///{path}", clock=clock)
        out = {"customers": args.customers, "orders": args.customers * 10, "db": str(path)}
        out["generate_s"] = round(generate(crm, args.customers, now, args.seed), 2)

    full = crm.refresh_analytics(full=True)
    out["full_refresh_s"] = round(full.seconds, 2)
    out["full_refresh_phases_s"] = full.phases
    out["full_excluded_orders"] = full.excluded_orders

    # 1 % of customers place an order a day later.
    rng = random.Random(args.seed + 1)
    clock.now = now + timedelta(days=1)
    changed = rng.sample(range(1, args.customers + 1), max(1, args.customers // 100))
    with crm.engine.begin() as conn:
        # Numbered after every existing order, so a reused population (--url) takes new numbers.
        first_number = (conn.execute(select(func.max(Order.id))).scalar_one() or 0) + 1
        conn.execute(insert(Order.__table__), [
            {"id": first_number + i, "order_number": f"{first_number + i:012d}", "customer_id": cid, "status": "paid", "total": 99.0,
             "address": "上海市浦东新区张江路1号", "created_at": clock.now - timedelta(hours=1),
             "updated_at": clock.now - timedelta(hours=1)}
            for i, cid in enumerate(changed)
        ])
    incremental = crm.refresh_analytics()
    out["incremental_refresh_s"] = round(incremental.seconds, 2)
    out["incremental_refresh_phases_s"] = incremental.phases
    out["incremental_customers_refreshed"] = incremental.customers_refreshed
    out["incremental_rows_rescored"] = incremental.rows_rescored

    ids = [rng.randint(1, args.customers) for _ in range(max(args.profiles, args.recommends, 1))]
    crm.customer_profile(ids[0])
    timings = []
    for cid in ids[:args.profiles]:
        t0 = time.perf_counter()
        crm.customer_profile(cid)
        timings.append(time.perf_counter() - t0)
    out["customer_profile"] = {"n": len(timings), **percentiles(timings)}

    t0 = time.perf_counter()
    crm.recommend(ids[0])  # the first call after the refreshes: nothing cached in the process
    out["recommend_first_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    timings = []
    for cid in ids[:args.recommends]:
        t0 = time.perf_counter()
        crm.recommend(cid)
        timings.append(time.perf_counter() - t0)
    out["recommend"] = {"n": len(timings), **percentiles(timings)}
    crm.dispose()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
