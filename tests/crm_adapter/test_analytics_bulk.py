"""`crm_adapter.analytics.bulk.insert_columns` stores exactly what a Core insert stores.

On PostgreSQL it writes with ``COPY ... FROM STDIN`` in the text format, where
a missed escape shifts or corrupts a row silently; on SQLite it binds
pre-formatted text. Each test writes the same rows both ways, into twin tables,
and compares what comes back (`repr`, so -0.0 and NaN count too).
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (JSON, Boolean, Column, Date, DateTime, Float, Integer, MetaData, String, Table, Text,
                        create_engine, insert, select)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from crm_adapter.analytics import bulk

TRICKY = [
    "", " ", "plain", "客户 张伟", "emoji 😀", "\\", "\\\\", "trailing\\", "\\N", "\\.", "N", "NULL", "null",
    "tab\there", "\t", "new\nline", "\n", "cr\rlf\r\n", "\\t literal", "\\n literal", "a\\\tb", "comma,\"quote\"'",
    "\x01\x1f control", "\u2028 line separator", "\x0b\x0c", "｜全角｜",
]
FLOATS = [0.0, -0.0, 0.1, 1 / 3, -2.5, 1e-310, 5e-324, 1.7976931348623157e308, float("inf"), float("-inf"),
          float("nan"), 2.0 ** 53 + 2, 123456789.123456789]
DATETIMES = [
    datetime(2026, 11, 1, 12, 0, 0), datetime(2026, 11, 1, 12, 0, 0, 1), datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(2000, 2, 29, 0, 0, 0, 500000),
]


def _twins(metadata: MetaData) -> tuple[Table, Table]:
    def table(name: str) -> Table:
        return Table(
            name, metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("s", String(200)), Column("t", Text), Column("f", Float), Column("n", Integer),
            Column("b", Boolean), Column("at", DateTime), Column("d", Date), Column("j", JSON),
        )
    return table("bulk_copied"), table("bulk_core")


@pytest.fixture
def engine(blank_url: str) -> Iterator[Engine]:
    eng = create_engine(blank_url, future=True)
    yield eng
    eng.dispose()


@pytest.fixture
def twins(engine: Engine) -> tuple[Table, Table]:
    metadata = MetaData()
    tables = _twins(metadata)
    metadata.create_all(engine)
    return tables


def _rows(n: int, dialect: str) -> dict[str, list[Any]]:
    """Columns of ``n`` rows cycling through the tricky values, NULLs included (JSON and
    dates only on PostgreSQL: the SQLite path takes the values its driver binds)."""
    def cycle(values: list[Any], with_null: bool = True) -> list[Any]:
        pool = values + ([None] if with_null else [])
        return [pool[i % len(pool)] for i in range(n)]
    return {
        "id": list(range(1, n + 1)),
        "s": cycle(TRICKY), "t": cycle(list(reversed(TRICKY))), "f": cycle(FLOATS),
        "n": cycle([0, -1, 2 ** 31 - 1, -(2 ** 31), 7]), "b": cycle([True, False]),
        "at": cycle(DATETIMES),
    } | ({} if dialect != "postgresql" else {
        "d": cycle([date(2026, 1, 31), date(1, 1, 1)]),
        "j": cycle([{"k": "v\\\n\t", "n": [1, 2.5, None]}, ["表", "\\N"], "a json string"]),
    })


def _write_both(engine: Engine, twins: tuple[Table, Table], data: dict[str, list[Any]]) -> None:
    copied, core = twins
    names = list(data)
    with engine.begin() as conn:
        assert bulk.insert_columns(conn, copied, data) == len(data["id"])
        conn.execute(insert(core), [dict(zip(names, row)) for row in zip(*data.values())])


def _read(engine: Engine, table: Table) -> list[str]:
    """Rows as text; -0.0 as 0.0, which is what a Core insert stores on both databases
    (psycopg2 sends the literal ``-0.0``, which PostgreSQL reads as minus numeric zero)
    and COPY keeps (`test_copy_keeps_negative_zero`)."""
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.id))
        return [repr(tuple(0.0 if isinstance(v, float) and v == 0 else v for v in row)) for row in rows]


def test_tricky_values_round_trip_as_core_stores_them(engine: Engine, twins: tuple[Table, Table]) -> None:
    data = _rows(3 * len(TRICKY) * len(FLOATS), engine.dialect.name)
    _write_both(engine, twins, data)
    copied, core = _read(engine, twins[0]), _read(engine, twins[1])
    assert copied == core
    with engine.connect() as conn:
        back = conn.execute(select(twins[0].c.s, twins[0].c.at, twins[0].c.f).order_by(twins[0].c.id)).all()
    assert [r.s for r in back] == data["s"]  # and Core itself stored them faithfully
    assert [r.at for r in back] == data["at"]
    assert _floats(r.f for r in back) == _floats(data["f"])


def _floats(values: Any) -> list[Any]:
    """Floats comparable with ``==``; NaN as None, as SQLite stores it (PostgreSQL keeps
    NaN and -0.0, which the comparison with Core's rows checks)."""
    return [None if v is not None and v != v else v for v in values]


def test_copy_keeps_negative_zero(engine: Engine, twins: tuple[Table, Table]) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores -0.0 as 0")
    with engine.begin() as conn:
        bulk.insert_columns(conn, twins[0], {"id": [1], "f": [-0.0]})
    with engine.connect() as conn:
        assert math.copysign(1.0, conn.execute(select(twins[0].c.f)).scalar_one()) == -1.0


def test_more_rows_than_one_batch(engine: Engine, twins: tuple[Table, Table], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "INSERT_BATCH", 7)
    data = _rows(50, engine.dialect.name)
    _write_both(engine, twins, data)
    assert _read(engine, twins[0]) == _read(engine, twins[1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")), min_size=1,
                   max_size=30),
    floats=st.lists(st.floats(allow_nan=False) | st.none(), min_size=1, max_size=30),
    offsets=st.lists(st.integers(0, 10 ** 12), min_size=1, max_size=30),
)
def test_any_text_float_and_datetime_round_trips(
    engine: Engine, twins: tuple[Table, Table], texts: list[str], floats: list[float], offsets: list[int]
) -> None:
    n = max(len(texts), len(floats), len(offsets))
    base = datetime(2000, 1, 1)
    data: dict[str, list[Any]] = {
        "id": list(range(1, n + 1)),
        "t": [texts[i % len(texts)] for i in range(n)],
        "f": [floats[i % len(floats)] for i in range(n)],
        "at": [base + timedelta(microseconds=offsets[i % len(offsets)]) for i in range(n)],
    }
    copied = twins[0]
    with engine.begin() as conn:
        conn.execute(copied.delete())
        bulk.insert_columns(conn, copied, data)
    with engine.connect() as conn:
        back = conn.execute(select(copied.c.t, copied.c.f, copied.c.at).order_by(copied.c.id)).all()
    assert [r.t for r in back] == data["t"]
    assert _floats(r.f for r in back) == _floats(data["f"])
    assert [r.at for r in back] == data["at"]


def test_a_failed_insert_raises_dbapi_error_and_leaves_nothing(engine: Engine, twins: tuple[Table, Table]) -> None:
    copied = twins[0]
    with pytest.raises(DBAPIError):
        with engine.begin() as conn:
            bulk.insert_columns(conn, copied, {"id": [1, 2], "s": ["a", "b"]})
            bulk.insert_columns(conn, copied, {"id": [3, 2], "s": ["c", "duplicate key"]})
    with engine.connect() as conn:
        assert conn.execute(select(copied.c.id)).all() == []  # the first insert went with the transaction


def test_aware_datetimes_are_refused_for_naive_columns(engine: Engine, twins: tuple[Table, Table]) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("only the COPY path formats datetimes itself")
    with pytest.raises(ValueError, match="timezone-aware"):
        with engine.begin() as conn:
            bulk.insert_columns(conn, twins[0], {"id": [1], "at": [datetime(2026, 1, 1, tzinfo=timezone.utc)]})


def test_copy_text_escapes_every_special_character() -> None:
    assert bulk.copy_text(Text(), ["a\\b\tc\nd\re", None, "\\N"]) == ["a\\\\b\\tc\\nd\\re", "\\N", "\\\\N"]
    assert bulk.copy_text(Float(), [0.1, None, float("nan"), 3]) == ["0.1", "\\N", "nan", "3"]
    assert bulk.copy_text(Integer(), [1, 2]) == ["1", "2"]
    assert bulk.copy_text(Integer(), [1, None, "\\N", "7\t8"]) == ["1", "\\N", "\\\\N", "7\\t8"]  # SQLite's loose types
    assert bulk.copy_text(Boolean(), [True, 0, None]) == ["t", "f", "\\N"]
    assert bulk.copy_text(DateTime(), [datetime(2026, 1, 2, 3, 4, 5), "2026-01-02 03:04:05.000000"]) == [
        "2026-01-02 03:04:05.000000", "2026-01-02 03:04:05.000000"]
    assert not math.isnan(float(bulk.copy_text(Float(), [1e-310])[0]))


def test_fetch_columns_reads_numbers_exactly_and_null_as_nan(engine: Engine, twins: tuple[Table, Table]) -> None:
    """On PostgreSQL through binary COPY: every float back bit for bit, NULL as NaN, in query order."""
    copied = twins[0]
    floats = [v for v in FLOATS if v == v] + [None, 2.5]
    data = {"id": list(range(1, len(floats) + 1)), "f": floats, "n": [2 ** 31 - 1 - i for i in range(len(floats))]}
    with engine.begin() as conn:
        bulk.insert_columns(conn, copied, data)
    with engine.connect() as conn:
        query = select(copied.c.id, copied.c.f, copied.c.n).order_by(copied.c.id.desc())
        got = bulk.fetch_columns(conn, [query, query.where(copied.c.id > 1000)], 3)
    expected = list(zip(data["id"], floats, data["n"]))[::-1]
    assert got.shape == (len(floats), 3)
    for row, (i, f, n) in zip(got.tolist(), expected):
        assert row[0] == i and row[2] == n
        assert math.isnan(row[1]) if f is None else row[1] == f  # == is bit-exact but for the sign of 0
