"""`CRM` with a remote directory: its writes also reach the company CRM, through the outbox."""
from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.backends.http import RetryPolicy
from crm_adapter.backends.rest import RestDirectory
from crm_adapter.models import Complaint, OutboxEntry
from crm_adapter.outbox import Outbox
from tests.fakes import rest_crm_server
from tests.fakes.zoho_server import FakeZoho

from .conftest import Clock, sqlite_url
from .remote_fixtures import fake_rest, fake_zoho, zoho_directory  # noqa: F401 (fixtures)

ZHANG, LINA, WANG = 1, 2, 3
NO_RETRY = RetryPolicy(connect_timeout=0.5, read_timeout=0.5, max_attempts=1, base_delay=0.01, total_budget=2)


@pytest.fixture
def linked(db_path, clock: Clock, fake_zoho: FakeZoho) -> Iterator[CRM]:
    crm = CRM(sqlite_url(db_path), clock=clock, directory=zoho_directory(fake_zoho, retry=NO_RETRY))
    yield crm
    crm.dispose()


def outbox_rows(crm: CRM) -> list[OutboxEntry]:
    with Session(crm.engine, future=True) as session:
        return list(session.execute(select(OutboxEntry).order_by(OutboxEntry.id)).scalars())


def test_complaint_reaches_zoho_with_the_local_ticket_number(linked: CRM, fake_zoho: FakeZoho) -> None:
    view = linked.create_complaint(ZHANG, "quality", "耳机左耳没声音", "wechat", "wx-1", "w:1:complaint",
                                   "260101000003")
    [case] = [r for r in fake_zoho.records("Cases") if r.get("Kefu_Ticket") == view.ticket_number]
    assert case["Kefu_Severity"] == view.severity == "high"  # core customer, quality: our policy decided
    assert case["Kefu_Order_Number"] == "260101000003"
    again = linked.create_complaint(ZHANG, "quality", "耳机左耳没声音", "wechat", "wx-1", "w:1:complaint")
    assert again == view
    assert [r.get("Kefu_Ticket") for r in fake_zoho.records("Cases")].count(view.ticket_number) == 1


def test_complaint_while_zoho_is_down_still_gets_a_ticket(linked: CRM, fake_zoho: FakeZoho, clock: Clock) -> None:
    port = fake_zoho.port
    fake_zoho.stop()
    view = linked.create_complaint(LINA, "logistics", "快递一直不动", "wechat", "wx-2", "w:2:complaint")
    assert view.ticket_number.startswith("TS")
    with Session(linked.engine, future=True) as session:
        assert session.execute(select(Complaint).where(Complaint.ticket_number == view.ticket_number)).scalar_one()
    [entry] = outbox_rows(linked)
    assert entry.status == "pending"
    fake_zoho.start(port)
    clock.advance(hours=1)
    assert Outbox(linked.engine, zoho_directory(fake_zoho), clock=clock).drain().delivered == 1
    assert [r.get("Kefu_Ticket") for r in fake_zoho.records("Cases")] == [view.ticket_number]


def test_profile_change_and_interaction_reach_zoho(linked: CRM, fake_zoho: FakeZoho) -> None:
    assert linked.update_profile(WANG, "email", "wang@example.com", "w:3:email").masked_email == "w***@example.com"
    contact = next(r for r in fake_zoho.records("Contacts") if r.get("Kefu_Customer_Id") == WANG)
    assert contact["Email"] == "wang@example.com"
    linked.record_interaction(WANG, "wechat", "wx-3", "faq", "问了运费")
    assert [n["Note_Content"].splitlines()[0] for n in fake_zoho.notes[contact["id"]]] == ["问了运费"]


def test_a_zoho_refusal_never_fails_the_customer(linked: CRM, fake_zoho: FakeZoho) -> None:
    fake_zoho.invalid_fields = {"Email"}
    view = linked.update_profile(WANG, "email", "wang@example.com", "w:4:email")
    assert view.masked_email == "w***@example.com"  # kept here
    [entry] = outbox_rows(linked)
    assert entry.status == "dead" and "邮箱" in entry.last_error  # and visible to operators


def test_without_a_directory_nothing_goes_to_the_outbox(crm: CRM) -> None:
    crm.create_complaint(ZHANG, "quality", "坏了", "wechat", "wx-5", "w:5:complaint")
    crm.update_profile(WANG, "email", "wang@example.com", "w:5:email")
    assert outbox_rows(crm) == []


def test_from_env_wires_the_configured_directory(monkeypatch: pytest.MonkeyPatch, db_path, fake_rest) -> None:
    monkeypatch.setenv("KEFU_CRM_URL", sqlite_url(db_path))
    monkeypatch.setenv("KEFU_CRM_DIRECTORY", "rest")
    monkeypatch.setenv("KEFU_REST_CRM_URL", fake_rest.url)
    monkeypatch.setenv("KEFU_REST_CRM_TOKEN", rest_crm_server.TOKEN)
    crm = CRM.from_env()
    assert isinstance(crm.directory, RestDirectory)
    monkeypatch.setenv("KEFU_CRM_DIRECTORY", "sql")
    assert CRM.from_env().directory is None
    monkeypatch.delenv("KEFU_CRM_DIRECTORY")
    assert CRM.from_env().directory is None
