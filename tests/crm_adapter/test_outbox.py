"""The outbox against the fake Zoho (and once the fake REST CRM), with a real SQLite outbox.

The remote CRM is made unreachable by stopping the fake server and brought
back by starting a new one on the same port, holding the same records.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_adapter import CRM, errors
from crm_adapter.backends.http import RetryPolicy
from crm_adapter.config import repo_root
from crm_adapter.models import OutboxEntry
from crm_adapter.outbox import Outbox
from crm_adapter.views import encode
from tests.fakes import rest_crm_server
from tests.fakes.zoho_server import FakeZoho

from .remote_fixtures import complaint, fake_rest, fake_zoho, rest_directory, zoho_directory  # noqa: F401

ZHANG, LINA, WANG = 1, 2, 3
NO_RETRY = RetryPolicy(connect_timeout=0.5, read_timeout=0.5, max_attempts=1, base_delay=0.01, total_budget=2)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CRM]:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    crm.create_schema()
    yield crm
    crm.dispose()


def make_outbox(db: CRM, fake: FakeZoho, clock: Clock, **kwargs: Any) -> Outbox:
    retry = kwargs.pop("retry", NO_RETRY)
    return Outbox(db.engine, zoho_directory(fake, retry=retry), clock=clock, **kwargs)


def entries(db: CRM) -> list[OutboxEntry]:
    with Session(db.engine, future=True) as session:
        return list(session.execute(select(OutboxEntry).order_by(OutboxEntry.id)).scalars())


def zoho_cases(fake: FakeZoho, ticket: str) -> int:
    return sum(1 for r in fake.records("Cases") if r.get("Kefu_Ticket") == ticket)


def down(fake: FakeZoho) -> None:
    fake.stop()


def up(fake: FakeZoho, port: int) -> None:
    """The same fake (same records) back on its old port."""
    fake.start(port)


def case_values(case: Any, customer: Any = ZHANG) -> dict[str, Any]:
    return {"customer_id": customer, "complaint": case, "sender_id": "wx-openid-1"}


def test_synced_at_once_when_the_crm_is_up(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    case = complaint()
    accepted = outbox.submit("create_case", case_values(case), "o:1:complaint")
    assert accepted.synced and accepted.result.ticket_number == case.ticket_number
    assert zoho_cases(fake_zoho, case.ticket_number) == 1
    [entry] = entries(db)
    assert (entry.status, entry.attempts, entry.backend) == ("done", 1, "zoho")


def test_crm_down_queued_then_drained_exactly_once(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    outbox = make_outbox(db, fake_zoho, clock)
    outbox.directory.get_customer(ZHANG)  # a token from before the outage
    down(fake_zoho)
    case = complaint()
    accepted = outbox.submit("create_case", case_values(case), "o:2:complaint")
    assert not accepted.synced and accepted.result is None  # accepted, will sync
    [entry] = entries(db)
    assert (entry.status, entry.attempts) == ("pending", 1)
    assert "CRMUnavailable" in entry.last_error

    up(fake_zoho, port)
    clock.advance(hours=2)
    report = outbox.drain()
    assert (report.delivered, report.pending, report.stopped) == (1, 0, "empty")
    assert zoho_cases(fake_zoho, case.ticket_number) == 1
    assert outbox.drain().delivered == 0  # nothing left, nothing repeated
    assert zoho_cases(fake_zoho, case.ticket_number) == 1


def test_first_push_timed_out_after_the_crm_stored_it(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    outbox.directory.get_customer(ZHANG)
    fake_zoho.delay_after_write, fake_zoho.slow_writes = 1.0, 1
    case = complaint()
    accepted = outbox.submit("create_case", case_values(case), "o:3:complaint")
    assert not accepted.synced  # we could not know it worked ...
    assert zoho_cases(fake_zoho, case.ticket_number) == 1  # ... but it did
    clock.advance(hours=1)
    assert outbox.drain().delivered == 1
    assert zoho_cases(fake_zoho, case.ticket_number) == 1
    assert fake_zoho.count("POST", "/crm/v2/Cases") == 1  # found by its key, not posted again


def test_two_drains_at_once_deliver_each_entry_once(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    outbox = make_outbox(db, fake_zoho, clock)
    outbox.directory.get_customer(ZHANG)
    down(fake_zoho)
    cases = [complaint() for _ in range(4)]
    for i, case in enumerate(cases):
        outbox.submit("create_case", case_values(case), f"o:4:{i}")
    up(fake_zoho, port)
    fake_zoho.delay = 0.05  # long enough for the two drains to overlap
    clock.advance(hours=2)
    other = make_outbox(db, fake_zoho, clock)  # a second process, its own directory and token
    reports = []
    threads = [threading.Thread(target=lambda o=o: reports.append(o.drain())) for o in (outbox, other, outbox)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while outbox.drain().pending:  # whoever stopped early ("busy") left the rest to the others
        pass
    assert sum(r.delivered for r in reports) <= 4
    assert [zoho_cases(fake_zoho, c.ticket_number) for c in cases] == [1, 1, 1, 1]
    assert fake_zoho.count("POST", "/crm/v2/Cases") == 4
    assert {e.status for e in entries(db)} == {"done"}


def test_drain_keeps_the_order(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    outbox = make_outbox(db, fake_zoho, clock)
    outbox.directory.get_customer(ZHANG)
    down(fake_zoho)
    case = complaint()
    outbox.submit("create_case", case_values(case), "o:5:complaint")
    later = outbox.submit("update_case_status", {"ticket_number": case.ticket_number, "status": "resolved"},
                          "o:5:close")
    assert not later.synced
    up(fake_zoho, port)
    requests_before = len(fake_zoho.requests)
    third = outbox.submit("add_note", {"customer_id": ZHANG, "kind": "complaint", "summary": "已登记投诉",
                                       "channel": "wechat", "sender_id": "s"}, "o:5:note")
    assert not third.synced and len(fake_zoho.requests) == requests_before  # older writes go first
    clock.advance(hours=2)
    assert outbox.drain().delivered == 3
    [stored] = [r for r in fake_zoho.records("Cases") if r["Kefu_Ticket"] == case.ticket_number]
    assert (stored["Status"], stored["Kefu_Status"]) == ("Closed", "resolved")


def test_back_off_between_attempts(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    outbox = make_outbox(db, fake_zoho, clock)
    outbox.directory.get_customer(ZHANG)
    down(fake_zoho)
    outbox.submit("create_case", case_values(complaint()), "o:6:complaint")
    first = entries(db)[0].next_attempt_at
    report = outbox.drain()
    assert (report.stopped, report.delivered, report.failed) == ("waiting", 0, 0)
    assert entries(db)[0].attempts == 1  # not tried before its time
    clock.now = first.replace(tzinfo=timezone.utc)
    assert outbox.drain().stopped == "unavailable"
    second = entries(db)[0]
    assert second.attempts == 2
    assert second.next_attempt_at - first >= timedelta(seconds=30)  # the wait grew
    up(fake_zoho, port)
    clock.now = second.next_attempt_at.replace(tzinfo=timezone.utc)
    assert outbox.drain().delivered == 1


def test_dead_letter_after_max_attempts_and_the_queue_moves_on(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    outbox = make_outbox(db, fake_zoho, clock, max_attempts=3)
    outbox.directory.get_customer(ZHANG)
    down(fake_zoho)
    doomed, fine = complaint(), complaint()
    outbox.submit("create_case", case_values(doomed), "o:7:a")
    outbox.submit("create_case", case_values(fine), "o:7:b")
    for _ in range(2):
        clock.advance(hours=2)
        outbox.drain()
    head = entries(db)[0]
    assert (head.status, head.attempts) == ("dead", 3)
    assert head.last_error.startswith("CRMUnavailable")
    up(fake_zoho, port)
    clock.advance(hours=2)
    assert outbox.drain().delivered == 1
    assert zoho_cases(fake_zoho, fine.ticket_number) == 1 and zoho_cases(fake_zoho, doomed.ticket_number) == 0
    status = outbox.status()
    assert status["counts"] == {"dead": 1, "done": 1} and status["dead"][0]["attempts"] == 3
    assert outbox.requeue(head.id) and outbox.drain().delivered == 1
    assert zoho_cases(fake_zoho, doomed.ticket_number) == 1


def test_refused_while_draining_is_dead_at_once(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    outbox = make_outbox(db, fake_zoho, clock)
    outbox.directory.get_customer(ZHANG)
    down(fake_zoho)
    outbox.submit("update_profile", {"customer_id": WANG, "field": "phone", "value": "13700003333"}, "o:8:p")
    outbox.submit("add_note", {"customer_id": WANG, "kind": "profile", "summary": "改了手机号",
                               "channel": "wechat", "sender_id": "s"}, "o:8:n")
    up(fake_zoho, port)
    fake_zoho.invalid_fields = {"Mobile"}
    clock.advance(hours=1)
    report = outbox.drain()
    assert (report.dead, report.delivered) == (1, 1)
    refused = entries(db)[0]
    assert refused.status == "dead" and refused.attempts == 2 and "手机号" in refused.last_error


def test_bad_input_is_refused_and_stores_nothing(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    bad = [
        ("create_case", {"customer_id": ZHANG, "complaint": {"x": 1}, "sender_id": "s"}),
        ("create_case", {**case_values(complaint()), "contact_phone": "12"}),
        ("update_profile", {"customer_id": ZHANG, "field": "email", "value": "nope"}),
        ("update_profile", {"customer_id": "abc", "field": "email", "value": "a@example.com"}),
        ("update_case_status", {"ticket_number": "TS202601010001", "status": "gone"}),
        ("add_note", {"customer_id": ZHANG, "kind": "faq", "summary": "", "channel": "wechat", "sender_id": "s"}),
        ("delete_customer", {"customer_id": ZHANG}),
    ]
    for operation, values in bad:
        with pytest.raises(errors.InvalidInput):
            outbox.submit(operation, values, f"o:9:{operation}")
    assert entries(db) == [] and fake_zoho.count("POST", "/crm/") == 0


def test_refused_on_the_first_attempt_raises_and_stores_nothing(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    fake_zoho.invalid_fields = {"Email"}
    with pytest.raises(errors.InvalidInput) as info:
        outbox.submit("update_profile", {"customer_id": ZHANG, "field": "email", "value": "z@example.com"}, "o:10:e")
    assert "邮箱" in info.value.message_zh
    with pytest.raises(errors.NotFound):
        outbox.submit("add_note", {"customer_id": 987654, "kind": "faq", "summary": "问运费",
                                   "channel": "wechat", "sender_id": "s"}, "o:10:n")
    assert entries(db) == []


def test_same_key_twice_is_one_entry(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    case = complaint()
    first = outbox.submit("create_case", case_values(case), "o:11:c")
    second = outbox.submit("create_case", case_values(case), "o:11:c")
    assert first == second and len(entries(db)) == 1
    assert zoho_cases(fake_zoho, case.ticket_number) == 1
    with pytest.raises(errors.IdempotencyConflict):
        outbox.submit("update_case_status", {"ticket_number": case.ticket_number, "status": "closed"}, "o:11:c")


def test_a_stalled_drainer_loses_its_lease(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    case = complaint()
    with Session(db.engine, future=True) as session, session.begin():  # a drainer that died mid-delivery
        now = clock.now.replace(tzinfo=None)
        session.add(OutboxEntry(
            idempotency_key="o:12:c", backend="zoho", operation="create_case",
            payload={"customer_id": ZHANG, "complaint": encode(case), "sender_id": "s", "contact_phone": None},
            status="pending", attempts=1, next_attempt_at=now, claimed_until=now + timedelta(minutes=2),
            claim_token="dead-drainer", created_at=now, updated_at=now,
        ))
    assert outbox.drain().stopped == "busy"
    clock.advance(minutes=3)
    assert outbox.drain().delivered == 1
    assert zoho_cases(fake_zoho, case.ticket_number) == 1


def test_payload_survives_the_round_trip_through_json(db: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    outbox = make_outbox(db, fake_zoho, clock)
    fake_zoho.fail_next = [503]
    accepted = outbox.submit("update_profile", {"customer_id": LINA, "field": "birthday", "value": "1992年3月9日"},
                             "o:13:b")
    assert not accepted.synced
    clock.advance(hours=1)
    outbox.drain()
    contact = next(r for r in fake_zoho.records("Contacts") if r.get("Kefu_Customer_Id") == LINA)
    assert contact["Date_of_Birth"] == "1992-03-09"


def test_rest_backend_through_the_outbox(db: CRM, fake_rest: Any, clock: Clock) -> None:
    outbox = Outbox(db.engine, rest_directory(fake_rest, retry=NO_RETRY), clock=clock)
    fake_rest.fail_next = [503]
    case = complaint()
    assert not outbox.submit("create_case", case_values(case), "o:14:c").synced
    clock.advance(hours=1)
    assert outbox.drain().delivered == 1
    assert list(fake_rest.cases) == [case.ticket_number]


def test_command_line(tmp_path: Path, fake_rest: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    crm = CRM(url)
    crm.create_schema()
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(rest_crm_server.MAPPING), encoding="utf-8")
    env = {**os.environ, "KEFU_CRM_URL": url, "KEFU_CRM_DIRECTORY": "rest", "KEFU_REST_CRM_URL": fake_rest.url,
           "KEFU_REST_CRM_TOKEN": rest_crm_server.TOKEN, "KEFU_REST_CRM_MAPPING": str(mapping),
           "PYTHONPATH": str(repo_root())}
    fake_rest.fail_next = [503]
    outbox = Outbox(crm.engine, rest_directory(fake_rest, retry=NO_RETRY))
    assert not outbox.submit("create_case", case_values(complaint()), "o:15:c").synced

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "crm_adapter.outbox", *args], env=env, cwd=repo_root(),
                              capture_output=True, text=True, timeout=120)

    status = run("status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"pending": 1}
    # not due yet (back-off), so a drain now waits; the entry's time is moved for the test
    with Session(crm.engine, future=True) as session, session.begin():
        session.execute(OutboxEntry.__table__.update().values(next_attempt_at=datetime(2000, 1, 1)))
    drained = run("drain")
    assert drained.returncode == 0, drained.stderr
    assert json.loads(drained.stdout)["delivered"] == 1 and len(fake_rest.cases) == 1
    assert json.loads(run("status").stdout)["counts"] == {"done": 1}
    assert json.loads(run("drain").stdout)["stopped"] == "empty"
    bad_env = {**env, "KEFU_CRM_DIRECTORY": "nonsense"}
    wrong = subprocess.run([sys.executable, "-m", "crm_adapter.outbox", "status"], env=bad_env, cwd=repo_root(),
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "KEFU_CRM_DIRECTORY" in wrong.stderr
    crm.dispose()


def test_migration_0004_creates_the_table_the_model_describes(tmp_path: Path) -> None:
    import importlib.util

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import MetaData, create_engine

    path = repo_root() / "crm_adapter" / "migrations" / "versions" / "0004_outbox.py"
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    assert spec and spec.loader
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert (migration.revision, migration.down_revision) == ("0004", "0003")

    engine = create_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}", future=True)
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            migration.upgrade()
    only_outbox = MetaData(naming_convention=OutboxEntry.metadata.naming_convention)
    OutboxEntry.__table__.to_metadata(only_outbox)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), only_outbox)
    assert diff == []
    with engine.begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            migration.downgrade()
    with engine.connect() as conn:
        assert "outbox" not in conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars().all()
