"""Fixtures for the care scheduler: a CRM with controlled customers, the campaigns, a clock."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from bot.scheduler import campaigns as campaigns_mod
from crm_adapter import CRM
from tests.crm_adapter.conftest import Clock, sqlite_url

#: 10:00 China time on 31 May 2026, as naive UTC.
MORNING = datetime(2026, 5, 31, 2, 0)


@pytest.fixture
def clock() -> Clock:
    return Clock(MORNING)


@pytest.fixture
def crm_url(tmp_path: Path) -> str:
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
