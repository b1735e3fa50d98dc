"""Fixtures for the care scheduler: a CRM with controlled customers, the campaigns, a clock."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from bot.scheduler import campaigns as campaigns_mod
from crm_adapter import CRM
from tests.crm_adapter.conftest import BACKENDS, Clock, postgres, postgres_db, sqlite_url  # noqa: F401 (fixtures)
from tests.fakes.sms_gateway import FakeSmsGateway

#: 10:00 China time on 31 May 2026, as naive UTC.
MORNING = datetime(2026, 5, 31, 2, 0)


@pytest.fixture
def clock() -> Clock:
    return Clock(MORNING)


@pytest.fixture(params=BACKENDS)
def crm_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite, and PostgreSQL too when KEFU_TEST_POSTGRES_URL is set."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_db")()
    return sqlite_url(tmp_path / "crm.sqlite3")


@pytest.fixture
def crm(crm_url: str, clock: Clock) -> Iterator[CRM]:
    instance = CRM(crm_url, clock=clock)
    instance.create_schema()
    yield instance
    instance.dispose()


@pytest.fixture(scope="session")
def campaigns() -> dict[str, campaigns_mod.Campaign]:
    return campaigns_mod.load()


@pytest.fixture
def sms() -> Iterator[FakeSmsGateway]:
    """A fake SMS gateway on 127.0.0.1, released and stopped after the test."""
    gateway = FakeSmsGateway().start()
    yield gateway
    gateway.release()
    gateway.stop()
