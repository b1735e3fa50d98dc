"""Product signals for recommendations: popularity and co-purchase counts.

`crm_adapter.recommend` scores products partly by how much they sell and by
how often they are bought together with what the customer bought. Both are
aggregates over every order line; at ten million lines they cost seconds to
a minute per question, so the analytics refresh computes them once
(`compute`) and stores them (`write`, tables of migration 0009) inside its
own transaction; a recommendation then reads a few rows by primary key.

The rules (the recommender's, unchanged):

* popularity: units (``quantity``) of orders paid/shipped/delivered, over
  the 90 days before the refresh's ``as_of`` (no upper bound, as before) and
  over all time; the recommender uses all time when the window sold nothing;
* co-purchase: for two distinct products, the number of distinct orders
  holding both, whatever the order's status (a cancelled basket still says
  what goes together).

"The 90 days" compare day numbers (`daynum`, what the refresh reads), so
an order within SQLite's millisecond rounding of the window's start may
fall on the other side of it than a text comparison would put it.

Reading is column-wise into numpy. On SQLite the rows come out of the
database as one ``group_concat`` text of one integer per row (per million
line ids), parsed by numpy: a Python tuple per row through the DBAPI cursor
(`bulk.fetch_columns`) took about five times as long at ten million order
lines. The full refresh hands over the counted orders it has read anyway.
Elsewhere (PostgreSQL) `bulk.fetch_columns` streams the rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

import numpy as np
from sqlalchemy import case, delete, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..models import Order, OrderItem, Product, ProductCopurchase, ProductPopularity
from . import bulk
from .daynum import day_number, to_day
from .facts import COUNTED_STATUSES

POPULAR_WINDOW = timedelta(days=90)

#: Ids per read on SQLite: bounds the text SQLite and Python hold at once (~15 MB).
ID_RANGE = 1_000_000


@dataclass(frozen=True)
class ProductStats:
    """What the refresh stores: popularity per catalogue product (aligned
    arrays) and co-purchase counts per ordered pair (both directions)."""

    as_of: datetime
    window_start: datetime
    product_ids: np.ndarray
    units_recent: np.ndarray
    units_all: np.ndarray
    pair_product: np.ndarray
    pair_other: np.ndarray
    pair_orders: np.ndarray


def compute(
    session: Session, now: datetime, counted_orders: Optional[tuple[np.ndarray, np.ndarray]] = None
) -> ProductStats:
    """The product signals as of ``now``, from every order line (see the module docstring).

    ``counted_orders``: (id, day number) of every counted order when the
    caller has read them already (the full refresh has); read here otherwise.
    """
    connection = session.connection()
    since = now - POPULAR_WINDOW
    since_day = to_day(since)
    catalogue = np.sort(bulk.fetch_columns(connection, [select(Product.id)], 1)[:, 0].astype(np.int64))
    size = int(catalogue.max(initial=0)) + 1
    lines, extra = _read_lines(connection, size)
    if counted_orders is None:
        order_ids, recent = _read_counted_orders(connection, since_day)
    else:
        order_ids, recent = counted_orders[0], counted_orders[1] >= since_day
    units_recent, units_all = _units(lines, extra, order_ids, recent, size)
    a, b, n = _pairs(lines, size)
    return ProductStats(now, since, catalogue, units_recent[catalogue], units_all[catalogue], a, b, n)


def write(session: Session, connection: Connection, stats: ProductStats) -> None:
    """Replace both tables with ``stats`` (in the caller's transaction)."""
    session.execute(delete(ProductPopularity.__table__))
    session.execute(delete(ProductCopurchase.__table__))
    n = len(stats.product_ids)
    bulk.insert_columns(connection, ProductPopularity.__table__, {
        "product_id": stats.product_ids.tolist(),
        "units_recent": stats.units_recent.tolist(),
        "units_all": stats.units_all.tolist(),
        "window_start": [stats.window_start] * n,
        "as_of": [stats.as_of] * n,
    })
    bulk.insert_columns(connection, ProductCopurchase.__table__, {
        "product_id": stats.pair_product.tolist(),
        "other_id": stats.pair_other.tolist(),
        "orders": stats.pair_orders.tolist(),
    })


def _read_lines(connection: Connection, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every order line as one code, ``order_id * size + product_id``, and the
    lines of more than one unit as rows (code, quantity - 1).

    One number per line is what makes the read cheap on SQLite (turning
    numbers into text is most of ``group_concat``'s cost); most lines are of
    one unit, so the few others are carried separately.
    """
    items = OrderItem.__table__
    if not bulk.raw_driver(connection):
        rows = bulk.fetch_columns(
            connection, [select(items.c.order_id, items.c.product_id, items.c.quantity)], 3
        ).astype(np.int64)
        codes = rows[:, 0] * size + rows[:, 1]
        more = rows[:, 2] != 1
        return codes, np.column_stack([codes[more], rows[more, 2] - 1])
    code = items.c.order_id * size + items.c.product_id  # SQLite integers are 64-bit
    top = connection.execute(select(func.max(items.c.id))).scalar() or 0
    # (|| binds tighter than * and + in SQL: the groupings are needed.)
    several = case((items.c.quantity != 1,
                    code.self_group().op("||")(literal_column("','")).op("||")((items.c.quantity - 1).self_group())))
    codes, extras = [], []
    for lo in range(0, top + 1, ID_RANGE):
        in_range = (items.c.id >= lo) & (items.c.id < lo + ID_RANGE)
        text, extra = connection.execute(
            select(func.group_concat(code), func.group_concat(several)).where(in_range)
        ).one()
        codes.append(_parsed(text))
        extras.append(_parsed(extra))
    return np.concatenate(codes), np.concatenate(extras).reshape(-1, 2)


def _read_counted_orders(connection: Connection, since_day: float) -> tuple[np.ndarray, np.ndarray]:
    """(id, created since ``since_day``) of every counted order; the comparison
    is on the same day numbers the full refresh reads (`facts`), so both
    paths agree to the last bit."""
    orders = Order.__table__
    recent = day_number(orders.c.created_at) >= since_day
    counted = orders.c.status.in_(COUNTED_STATUSES)
    if not bulk.raw_driver(connection):
        rows = bulk.fetch_columns(connection, [select(orders.c.id, day_number(orders.c.created_at)).where(counted)], 2)
        return rows[:, 0].astype(np.int64), rows[:, 1] >= since_day
    # One number per order, id * 2 + recent, from the covering index (narrower than the table).
    query = (
        select(func.group_concat(orders.c.id * 2 + case((recent, 1), else_=0)))
        .where(counted)
        .with_hint(orders, "INDEXED BY ix_orders_customer_history", "sqlite")
    )
    codes = _parsed(connection.execute(query).scalar())
    return codes // 2, (codes % 2).astype(bool)


def _parsed(text: Optional[str]) -> np.ndarray:
    return np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, dtype=np.int64)


def _units(
    lines: np.ndarray, extra: np.ndarray, order_ids: np.ndarray, recent: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Units per product id (arrays indexed by id): in counted orders created
    since the window start, and in all counted orders."""
    top = int(max(lines.max(initial=0) // size, order_ids.max(initial=0))) + 1
    kind = np.zeros(top, dtype=np.int8)  # by order id: 0 not counted, 1 counted, 2 counted and recent
    kind[order_ids] = 1 + recent.astype(np.int8)
    recent_units = np.zeros(size, dtype=np.int64)
    all_units = np.zeros(size, dtype=np.int64)
    for codes, weights in ((lines, None), (extra[:, 0], extra[:, 1])):
        of_line = kind[codes // size]
        product = codes % size
        for wanted, out in ((of_line > 0, all_units), (of_line == 2, recent_units)):
            w = None if weights is None else weights[wanted].astype(np.float64)  # exact below 2**53
            out += np.bincount(product[wanted], weights=w, minlength=size).astype(np.int64)
    return recent_units, all_units


def _pairs(lines: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(product, other, distinct orders holding both) for every ordered pair of
    distinct products sharing an order. Orders of k distinct products give
    k*(k-1) pairs, built for all orders of the same k at once."""
    empty = np.empty(0, dtype=np.int64)
    if len(lines) == 0:
        return empty, empty, empty
    codes = np.sort(lines, kind="stable")  # lines mostly come in order: near-linear
    codes = codes[np.r_[True, codes[1:] != codes[:-1]]]  # one per (order, product), by order
    order, product = codes // size, codes % size
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]])
    lengths = np.diff(np.r_[starts, len(codes)])
    found: list[np.ndarray] = []
    for k in np.unique(lengths[lengths >= 2]).tolist():
        baskets = product[starts[lengths == k][:, None] + np.arange(k)]  # (orders, k)
        left, right = np.nonzero(~np.eye(k, dtype=bool))
        found.append(baskets[:, left].ravel() * size + baskets[:, right].ravel())
    if not found:
        return empty, empty, empty
    pair, count = np.unique(np.concatenate(found), return_counts=True)
    return pair // size, pair % size, count.astype(np.int64)


def stored(session: Session) -> Optional[tuple[dict[int, int], dict[int, int]]]:
    """(units_recent, units_all) by product as the last refresh stored them, or
    None when no refresh has written them yet."""
    rows = session.execute(
        select(ProductPopularity.product_id, ProductPopularity.units_recent, ProductPopularity.units_all)
    ).all()
    if not rows:
        return None
    return {pid: recent for pid, recent, _ in rows}, {pid: total for pid, _, total in rows}
