"""Fixtures for crm_adapter tests: real databases, no mocks.

The CRM contract runs on every backend: `crm` and `empty_crm` are
parametrised over SQLite and, when ``KEFU_TEST_POSTGRES_URL`` is set (as
scripts/test.sh does), PostgreSQL; a test that takes them runs once per
backend, with ids ``[sqlite]`` and ``[postgresql]``.

Seeding once and copying keeps "a fresh database for every test" cheap: a
template is seeded (schema + demo customers + a small generated population)
once per session, then each test gets its own copy: a file copy on SQLite,
the session's database reset to the seed on PostgreSQL (`SeededPostgres`).
PostgreSQL tests create databases next to the one in the URL (its role needs
CREATEDB; they are named ``kefu_t<pid>_*`` and dropped afterwards).

Time is pinned: the seed's "now" is the current hour and every CRM built
here runs on a `Clock` 30 minutes later, which tests can move.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import Integer, create_engine, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.models import Base
from crm_adapter.seed import seed

# Hypothesis caches examples and code constants under ./.hypothesis, and does
# so while pytest collects, before any fixture runs; keep that out of the repo.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "kefu-crm-hypothesis")

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL") or None
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])

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


class PostgresServer:
    """Creates and drops whole databases next to the one in the test URL."""

    def __init__(self, url: str) -> None:
        self.base_url = make_url(url)
        self._admin: Engine = create_engine(url, future=True, isolation_level="AUTOCOMMIT")
        self._names = (f"kefu_t{os.getpid()}_{n}" for n in itertools.count(1))

    def url(self, database: str) -> str:
        return self.base_url.set(database=database).render_as_string(hide_password=False)

    def create(self, template: Optional[str] = None) -> str:
        name = next(self._names)
        suffix = f" TEMPLATE {template}" if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}{suffix}"))
        return name

    def drop(self, database: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))

    def close(self) -> None:
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if not POSTGRES_URL:
        pytest.skip("KEFU_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)")
    server = PostgresServer(POSTGRES_URL)
    yield server
    server.close()


class SeededPostgres:
    """One seeded PostgreSQL database per session, reset to the seed before each test.

    ``CREATE DATABASE ... TEMPLATE`` costs about 0.4 s, a reset about a tenth
    of that: right after seeding, every table is copied into the schema
    ``kefu_seed``; a reset drops triggers and functions tests may have left behind,
    truncates the CRM tables and copies the rows back (parents first), then
    moves the id sequences past the copied ids.
    """

    SNAPSHOT = "kefu_seed"

    def __init__(self, server: PostgresServer) -> None:
        self.name = server.create()
        self.url = server.url(self.name)
        crm = CRM(self.url)
        seed(crm, customers=TEMPLATE_CUSTOMERS, seed=7, now=SEED_NOW)
        crm.dispose()
        self._engine: Engine = create_engine(self.url, future=True)
        with self._engine.begin() as conn:
            self.tables = [t for t in Base.metadata.sorted_tables if inspect(conn).has_table(t.name)]
            conn.execute(text(f"CREATE SCHEMA {self.SNAPSHOT}"))
            for table in self.tables:
                conn.execute(text(f"CREATE TABLE {self.SNAPSHOT}.{table.name} AS TABLE public.{table.name}"))

    def reset(self) -> None:
        names = ", ".join(f"public.{t.name}" for t in self.tables)
        with self._engine.begin() as conn:
            triggers = conn.execute(text(
                "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
            )).all()
            for trigger, table in triggers:
                conn.execute(text(f'DROP TRIGGER "{trigger}" ON {table}'))
            functions = conn.execute(text(
                "SELECT oid::regprocedure::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
            )).scalars().all()
            for function in functions:
                conn.execute(text(f"DROP FUNCTION {function}"))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for table in self.tables:
                conn.execute(text(f"INSERT INTO public.{table.name} SELECT * FROM {self.SNAPSHOT}.{table.name}"))
                # (autoincrement is "auto", truthy, even on a text key such as care_jobs.id)
                if "id" in table.c and isinstance(table.c.id.type, Integer) and table.c.id.autoincrement:
                    conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('public.{table.name}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM public.{table.name}), false)"
                    ))

    def close(self) -> None:
        self._engine.dispose()


@pytest.fixture(scope="session")
def postgres_seeded(postgres: PostgresServer) -> Iterator[SeededPostgres]:
    seeded = SeededPostgres(postgres)
    yield seeded
    seeded.close()
    postgres.drop(seeded.name)


@pytest.fixture
def seeded_postgres_url(postgres_seeded: SeededPostgres) -> str:
    """The session's seeded PostgreSQL database, freshly reset to the seed."""
    postgres_seeded.reset()
    return postgres_seeded.url


@pytest.fixture
def postgres_db(postgres: PostgresServer) -> Iterator[Callable[[Optional[str]], str]]:
    """``make(template=None)``: the URL of a new database, dropped after the test."""
    made: list[str] = []

    def make(template: Optional[str] = None) -> str:
        made.append(postgres.create(template))
        return postgres.url(made[-1])

    yield make
    for name in made:
        postgres.drop(name)


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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database behind `crm` / `empty_crm` / `blank_url`: "sqlite" or "postgresql"."""
    return str(request.param)


@pytest.fixture
def blank_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, completely empty database (no tables at all)."""
    if backend == "postgresql":
        return request.getfixturevalue("postgres_db")()
    return sqlite_url(tmp_path / "blank.sqlite3")


@pytest.fixture
def crm(backend: str, request: pytest.FixtureRequest, clock: Clock) -> Iterator[CRM]:
    """A seeded CRM on its own database."""
    if backend == "postgresql":
        url = request.getfixturevalue("seeded_postgres_url")
    else:
        url = sqlite_url(request.getfixturevalue("db_path"))
    instance = CRM(url, clock=clock)
    yield instance
    instance.dispose()


@pytest.fixture
def empty_crm(blank_url: str, clock: Clock) -> Iterator[CRM]:
    """A CRM with the schema but no data."""
    instance = CRM(blank_url, clock=clock)
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
