"""Fixtures for the directory, backend and outbox tests: the three directories
(SQL on a seeded SQLite copy, Zoho and REST against fake servers) holding the
same three demo customers, and helpers to look inside each store.

Import the fixtures a test module uses (``from .remote_fixtures import ...``):
they are kept out of conftest.py so that other work on that file is not
disturbed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Optional

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_adapter import CRM, policy
from crm_adapter.backends.http import RetryPolicy
from crm_adapter.backends.rest import FieldMapping, RestDirectory, RestSettings
from crm_adapter.backends.zoho import ZohoDirectory, ZohoSettings
from crm_adapter.directory import CustomerDirectory, SqlDirectory
from crm_adapter.models import Complaint, Interaction
from crm_adapter.views import COMPLAINT_CATEGORY_LABELS, COMPLAINT_STATUS_LABELS, SEVERITY_LABELS, ComplaintView
from tests.fakes import rest_crm_server, zoho_server
from tests.fakes.rest_crm_server import FakeRestCrm
from tests.fakes.zoho_server import FakeZoho

#: Quick retries so that failure tests finish in a second or two.
FAST = RetryPolicy(connect_timeout=1.0, read_timeout=2.0, max_attempts=3, base_delay=0.01,
                   max_delay=0.05, total_budget=6.0)

DEMO = [  # (id, name, phone, email, birthday, address, city, tier)
    (1, "张伟", "13800138000", "zhangwei@example.com", "1985-06-18", "上海市浦东新区张江路100号3栋1202室", "上海", "core"),
    (2, "李娜", "13912345678", "li.na@example.com", "1992-03-08", "浙江省杭州市西湖区文三路90号5幢302室", "杭州",
     "potential"),
    (3, "王芳", "13700001111", None, "1998-11-20", "四川省成都市武侯区人民南路四段12号", "成都", "low"),
]


def seed_zoho(fake: FakeZoho) -> None:
    for cid, name, phone, email, birthday, address, city, tier in DEMO:
        fake.add_contact(Last_Name=name, First_Name=None, Mobile=phone, Email=email, Date_of_Birth=birthday,
                         Mailing_Street=address, Mailing_City=city, Kefu_Customer_Id=cid, Kefu_Tier=tier)
    fake.add_contact(Last_Name="未关联", Mobile="13600000000")  # staff-made, no Kefu_Customer_Id


def seed_rest(fake: FakeRestCrm) -> None:
    grades = {"core": "A", "potential": "B", "low": "C"}
    for cid, name, phone, email, birthday, address, city, tier in DEMO:
        fake.add_customer({
            "account_no": cid, "grade": grades[tier],
            "profile": {"name": name, "mobile": phone, "email": email, "birthday": birthday},
            "address": {"city": city, "detail": address},
        })


def zoho_directory(fake: FakeZoho, retry: RetryPolicy = FAST, **kwargs: Any) -> ZohoDirectory:
    settings = ZohoSettings(
        accounts_url=fake.url, api_url=fake.url, client_id=zoho_server.CLIENT_ID,
        client_secret=zoho_server.CLIENT_SECRET, refresh_token=zoho_server.REFRESH_TOKEN,
        token_file=kwargs.pop("token_file", None),
    )
    return ZohoDirectory(settings, retry=retry, **kwargs)


def rest_directory(fake: FakeRestCrm, retry: RetryPolicy = FAST, **kwargs: Any) -> RestDirectory:
    settings = RestSettings(base_url=fake.url, token=rest_crm_server.TOKEN,
                            mapping=FieldMapping.from_dict(rest_crm_server.MAPPING))
    return RestDirectory(settings, retry=retry, **kwargs)


@pytest.fixture
def fake_zoho() -> Iterator[FakeZoho]:
    fake = FakeZoho().start()
    seed_zoho(fake)
    yield fake
    fake.stop()


@pytest.fixture
def fake_rest() -> Iterator[FakeRestCrm]:
    fake = FakeRestCrm().start()
    seed_rest(fake)
    yield fake
    fake.stop()


@dataclass
class Backend:
    """A directory and a look inside the store behind it."""

    name: str
    directory: CustomerDirectory
    cases_with_ticket: Callable[[str], int]
    notes_of: Callable[[int], list[str]]  # stored summaries / contents
    fake: Any = None


def sql_backend(crm: CRM) -> Backend:
    def cases(ticket: str) -> int:
        with Session(crm.engine, future=True) as s:
            return len(s.execute(select(Complaint.id).where(Complaint.ticket_number == ticket)).all())

    def notes(cid: int) -> list[str]:
        with Session(crm.engine, future=True) as s:
            return list(s.execute(select(Interaction.summary).where(Interaction.customer_id == cid)).scalars())

    return Backend("sql", SqlDirectory(crm), cases, notes)


def zoho_backend(fake: FakeZoho) -> Backend:
    def cases(ticket: str) -> int:
        return sum(1 for r in fake.records("Cases") if r.get("Kefu_Ticket") == ticket)

    def notes(cid: int) -> list[str]:
        contact = next(r for r in fake.records("Contacts") if r.get("Kefu_Customer_Id") == cid)
        return [n["Note_Content"] for n in fake.notes.get(contact["id"], [])]

    return Backend("zoho", zoho_directory(fake), cases, notes, fake)


def rest_backend(fake: FakeRestCrm) -> Backend:
    def cases(ticket: str) -> int:
        return sum(1 for t in fake.cases if t == ticket)

    def notes(cid: int) -> list[str]:
        return [n["text"] for n in fake.notes if n.get("account_no") == cid]

    return Backend("rest", rest_directory(fake), cases, notes, fake)


@pytest.fixture(params=["sql", "zoho", "rest"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sql":
        yield sql_backend(request.getfixturevalue("crm"))
    elif request.param == "zoho":
        yield zoho_backend(request.getfixturevalue("fake_zoho"))
    else:
        yield rest_backend(request.getfixturevalue("fake_rest"))


_tickets = iter(range(9001, 10000))


def complaint(
    *,
    category: str = "logistics",
    description: str = "快递五天了还没到，物流一直不更新",
    tier: Optional[str] = "core",
    order_number: Optional[str] = "260101000001",
    contact_phone: Optional[str] = None,
    now: Optional[datetime] = None,
) -> ComplaintView:
    """A complaint as CRM.create_complaint would decide it: numbered, classified, SLA set."""
    from crm_adapter.masking import mask_phone
    from crm_adapter.views import CHINA_TZ

    moment = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    utc = policy.utc_naive(moment)
    severity = policy.complaint_severity(category, description, tier)
    return ComplaintView(
        ticket_number=f"TS{policy.china_date(utc):%Y%m%d}{next(_tickets):04d}",
        category=category,
        category_label=COMPLAINT_CATEGORY_LABELS[category],
        description=description,
        severity=severity,
        severity_label=SEVERITY_LABELS[severity],
        status="open",
        status_label=COMPLAINT_STATUS_LABELS["open"],
        channel="wechat",
        order_number=order_number,
        masked_contact_phone=mask_phone(contact_phone),
        created_at=moment.astimezone(CHINA_TZ),
        sla_due_at=policy.sla_due(severity, utc).replace(tzinfo=timezone.utc).astimezone(CHINA_TZ),
        resolved_at=None,
    )


__all__ = [
    "DEMO", "FAST", "Backend", "backend", "complaint", "fake_rest", "fake_zoho", "rest_backend", "rest_directory",
    "seed_rest", "seed_zoho", "sql_backend", "zoho_backend", "zoho_directory", "timedelta",
]
