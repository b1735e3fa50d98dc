"""Schema migrations, run from code or the command line (no alembic.ini needed).

    python -m crm_adapter.migrate [--url URL] upgrade [REV]    # default: head
    python -m crm_adapter.migrate [--url URL] current
    python -m crm_adapter.migrate [--url URL] downgrade REV    # e.g. 0001, or base

The URL defaults to the CRM's own (``KEFU_CRM_URL`` or the embedded SQLite
file); the Alembic environment never reads one from a file, so no password is
ever written down.

Every run is one transaction, taken under a lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory transaction lock on PostgreSQL), so two processes that
start at once -- the action server and a seed, two replicas -- migrate one
after the other instead of both creating the same table. On SQLite a failed
migration leaves nothing half-done either, because its DDL is transactional.

Databases created before Alembic (by ``create_all``: all baseline tables but
no ``alembic_version``) are stamped at the baseline first and then upgraded;
a database with only some of those tables is refused rather than guessed at.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from . import config as crm_config
from .errors import CRMUnavailable
from .masking import guard_logger

log = guard_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"
VERSION_TABLE = "alembic_version"

#: The tables `create_all` made before Alembic, i.e. what revision 0001 creates.
BASELINE_TABLES = frozenset({
    "customers", "channel_identities", "products", "orders", "order_items", "coupons",
    "return_requests", "complaints", "escalations", "payment_tickets", "invoice_requests",
    "interactions", "consents", "csat_ratings", "verification_attempts", "number_sequences",
    "processed_operations",
})

# Any constant works; it only has to be the same for every Kefu process.
_PG_LOCK_KEY = 0x4B454655  # "KEFU"

Target = Union[str, Engine]


def alembic_config(connection: Optional[Connection] = None, url: Optional[str] = None) -> Config:
    """An in-memory Alembic configuration for ``connection`` (or ``url``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    cfg.attributes["url"] = url
    return cfg


@contextmanager
def _engine(target: Target) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    engine = crm_config.make_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _locked_transaction(target: Target) -> Iterator[Connection]:
    """One transaction that no other migrating process runs alongside."""
    with _engine(target) as engine:
        with engine.connect() as connection:
            connection = connection.execution_options(kefu_sqlite_begin="IMMEDIATE")
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield connection


def _current(connection: Connection) -> Optional[str]:
    return MigrationContext.configure(connection).get_current_revision()


def _stamp_if_pre_alembic(connection: Connection) -> None:
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables or not tables & BASELINE_TABLES:
        return
    missing = BASELINE_TABLES - tables
    if missing:
        raise CRMUnavailable(
            "CRM database has some tables but no migration history and lacks "
            f"{', '.join(sorted(missing))}; repair it by hand or start from an empty database"
        )
    log.info("database created before migrations: stamping it at revision %s", BASELINE)
    command.stamp(alembic_config(connection), BASELINE)


def upgrade(target: Target, revision: str = "head") -> Optional[str]:
    """Bring the database at ``target`` (URL or engine) to ``revision``; returns the new revision."""
    with _locked_transaction(target) as connection:
        _stamp_if_pre_alembic(connection)
        before = _current(connection)
        command.upgrade(alembic_config(connection), revision)
        after = _current(connection)
    if after != before:
        log.info("CRM schema migrated from %s to %s", before or "empty", after)
    return after


def downgrade(target: Target, revision: str) -> Optional[str]:
    """Step the schema back to ``revision`` (``base`` drops every CRM table: all data)."""
    with _locked_transaction(target) as connection:
        _stamp_if_pre_alembic(connection)
        command.downgrade(alembic_config(connection), revision)
        return _current(connection)


def current(target: Target) -> Optional[str]:
    """The database's revision; None for an empty (or pre-Alembic) database."""
    with _engine(target) as engine, engine.connect() as connection:
        return _current(connection)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_adapter.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: KEFU_CRM_URL or var/crm.sqlite3)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="migrate forward (default: to the newest revision)")
    up.add_argument("revision", nargs="?", default="head")
    sub.add_parser("current", help="print the database's revision")
    down = sub.add_parser("downgrade", help="migrate back to REV (base: drop everything)")
    down.add_argument("revision")
    args = parser.parse_args(argv)

    url = args.url or crm_config.crm_url()
    where = url.split("@")[-1]  # never print credentials
    if args.command == "upgrade":
        print(f"{where}: at revision {upgrade(url, args.revision)}")
    elif args.command == "downgrade":
        print(f"{where}: at revision {downgrade(url, args.revision) or 'base'}")
    else:
        print(current(url) or "base")
    return 0


if __name__ == "__main__":
    sys.exit(main())
