"""Fixtures for crm_adapter tests: a real SQLite file per test, no mocks.

Seeding once and copying the file keeps "a fresh database for every test"
cheap: the template is seeded (schema + demo customers + a small generated
population) once per session, then each test gets its own copy.

Time is pinned: the seed's "now" is the current hour and every CRM built
here runs on a `Clock` 30 minutes later, which tests can move.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.seed import seed

# Hypothesis caches examples and code constants under ./.hypothesis, and does
# so while pytest collects, before any fixture runs; keep that out of the repo.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "kefu-crm-hypothesis")

SEED_NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
TEMPLATE_CUSTOMERS = 60


class Clock:
    """A movable clock for `CRM(clock=...)`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crm_template") / "template.sqlite3"
    crm = CRM(sqlite_url(path))
    seed(crm, customers=TEMPLATE_CUSTOMERS, seed=7, now=SEED_NOW)
    crm.dispose()  # checkpoints the WAL into the main file, so copying it is enough
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock(SEED_NOW + timedelta(minutes=30))


@pytest.fixture
def db_path(template_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "crm.sqlite3"
    shutil.copyfile(template_db, path)
    return path


@pytest.fixture
def crm(db_path: Path, clock: Clock) -> Iterator[CRM]:
    """A seeded CRM on its own database file."""
    instance = CRM(sqlite_url(db_path), clock=clock)
    yield instance
    instance.dispose()


@pytest.fixture
def empty_crm(tmp_path: Path, clock: Clock) -> Iterator[CRM]:
    """A CRM with the schema but no data."""
    instance = CRM(sqlite_url(tmp_path / "empty.sqlite3"), clock=clock)
    instance.create_schema()
    yield instance
    instance.dispose()


@pytest.fixture
def db(crm: CRM) -> Callable[[], Session]:
    """Direct sessions on the test database, to arrange and inspect rows."""

    def session() -> Session:
        return Session(crm.engine, future=True)

    return session


@pytest.fixture
def key() -> Callable[[str], str]:
    """Fresh idempotency keys shaped like the actions' ``sender:message:what``."""
    counter = iter(range(1, 10**9))

    def make(what: str = "op") -> str:
        return f"tester:msg{next(counter)}:{what}"

    return make


@pytest.fixture
def count(crm: CRM) -> Callable[..., int]:
    """``count(Model, *conditions)``: rows in the test database."""

    def rows(model: Any, *where: Any) -> int:
        with Session(crm.engine, future=True) as session:
            query = select(func.count()).select_from(model).where(*where)
            return int(session.execute(query).scalar_one())

    return rows
