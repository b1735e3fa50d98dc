"""What only PostgreSQL can show (opt-in: set KEFU_TEST_POSTGRES_URL).

    scripts/test.sh tests/crm_adapter      # starts a throwaway server and sets it

The contract itself runs on PostgreSQL through the parametrised `crm`
fixture (conftest.py); this module adds what differs from SQLite: sequences
after the seed's explicit ids, row locks and unique-key races under READ
COMMITTED, partial unique indexes, transactional rollback. Each test starts
from the freshly reset seed.
"""
from __future__ import annotations

import os
from typing import Iterator

import pytest
from sqlalchemy import text

from crm_adapter import CRM, errors
from crm_adapter.models import Complaint, ProcessedOperation, ReturnRequest

from .conftest import Clock
from .test_crm_idempotency import WRITES, _in_parallel

URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="KEFU_TEST_POSTGRES_URL is not set")


@pytest.fixture
def pg(seeded_postgres_url: str, clock: Clock) -> Iterator[CRM]:
    crm = CRM(seeded_postgres_url, clock=clock)
    yield crm
    crm.dispose()


def _count(crm: CRM, table: str, where: str = "TRUE") -> int:
    with crm.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())


def test_demo_fixtures_and_reads(pg: CRM) -> None:
    assert pg.get_customer(1).masked_phone == "138****8000"
    assert pg.resolve_identity("rest", "demo-zhangwei").id == 1
    assert pg.verify_by_order("260101000021", "1111").id == 3
    assert pg.latest_order(1).order_number == "260101000002"
    assert pg.get_order(2, "260101000001") is None
    assert pg.membership(1).level == "金卡"
    assert len(pg.list_products()) == 32
    assert pg.find_products("降噪耳机")[0].sku == "SKU1003"
    assert len(pg.recommend(1)) == 3 and len(pg.recommend(None)) == 3
    assert len(pg.complaints_for_customer(1, open_only=True)) == 1
    assert {r.status for r in pg.returns_for_customer(1)} == {"refunded", "approved"}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_every_write_is_idempotent(pg: CRM, name: str) -> None:
    call, _ = WRITES[name]
    first = call(pg, "pg:m1:op")  # inserting after the seed proves the sequences were advanced
    assert call(pg, "pg:m1:op") == first
    assert _count(pg, "processed_operations", "idempotency_key = 'pg:m1:op'") == 1


def test_refusals_and_not_found(pg: CRM) -> None:
    with pytest.raises(errors.InvalidInput):
        pg.create_return(1, "260101000005", "不想要了", "pg:m1:ret")
    with pytest.raises(errors.NotFound):
        pg.get_customer(999999)
    assert pg.cancel_order(1, "260101000001", "pg:m2:cancel").outcome == "not_allowed"


def test_concurrent_same_key_writes_once(pg: CRM) -> None:
    results = _in_parallel([
        lambda: pg.create_complaint(3, "logistics", "慢", "rest", "pg-race", "pg:race:complaint")
        for _ in range(8)
    ])
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.ticket_number for r in results}) == 1
    assert _count(pg, Complaint.__tablename__, "sender_id = 'pg-race'") == 1


def test_concurrent_writers_get_distinct_ticket_numbers(pg: CRM) -> None:
    results = _in_parallel([
        (lambda i=i: pg.create_complaint(3, "logistics", "慢", "rest", "pg-race", f"pg:race{i}:complaint"))
        for i in range(6)
    ])
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.ticket_number for r in results}) == 6


def test_concurrent_returns_for_one_order_create_one(pg: CRM) -> None:
    before = _count(pg, ReturnRequest.__tablename__)
    results = _in_parallel([
        (lambda i=i: pg.create_return(1, "260101000003", "不喜欢", f"pg:ret{i}:return")) for i in range(4)
    ])
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert sum(isinstance(r, errors.InvalidInput) for r in results) == 3
    assert _count(pg, ReturnRequest.__tablename__) == before + 1


def test_write_failing_midway_leaves_nothing(pg: CRM) -> None:
    with pg.engine.begin() as conn:
        conn.execute(text(
            "CREATE FUNCTION kefu_fail() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
        ))
        conn.execute(text(
            "CREATE TRIGGER injected_failure BEFORE INSERT ON processed_operations "
            "FOR EACH ROW EXECUTE FUNCTION kefu_fail()"
        ))
    try:
        with pytest.raises(errors.CRMUnavailable):
            pg.cancel_order(1, "260101000002", "pg:m1:cancel")
        assert pg.get_order(1, "260101000002").status == "paid"
        assert _count(pg, ProcessedOperation.__tablename__) == 0
    finally:
        with pg.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER injected_failure ON processed_operations"))
            conn.execute(text("DROP FUNCTION kefu_fail()"))



def _drop_pooled_connections(pg: CRM, n: int = 3) -> None:
    """Terminate the server side of ``n`` pooled connections of ``pg`` (as a server restart
    would), from a connection of another engine, leaving the test fixtures' own alone."""
    held = [pg.engine.connect() for _ in range(n)]
    pids = [conn.execute(text("SELECT pg_backend_pid()")).scalar_one() for conn in held]
    for conn in held:
        conn.close()  # back to the pool, alive as far as it knows
    other = CRM(pg.url)
    try:
        with other.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
                         {"pids": pids})
            conn.commit()
    finally:
        other.dispose()


def test_profile_lookup_survives_connections_dropped_just_after_use(pg: CRM) -> None:
    """Recently used connections are not pinged; the lookup retries once on a disconnect."""
    first = pg.customer_profile(1)
    _drop_pooled_connections(pg)
    assert pg.customer_profile(1) == first


def test_idle_connections_are_pinged_before_use(pg: CRM, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_adapter import config

    monkeypatch.setattr(config, "PING_AFTER_IDLE_S", 0.0)
    pg.get_customer(1)
    _drop_pooled_connections(pg)
    assert pg.get_customer(1).id == 1  # no retry of its own: the ping caught the dead connection


def test_profile_lookup_leaves_pooled_connections_transactional(pg: CRM) -> None:
    pg.customer_profile(1)
    raw = pg.engine.raw_connection()
    try:
        assert raw.dbapi_connection.autocommit is False
    finally:
        raw.close()
