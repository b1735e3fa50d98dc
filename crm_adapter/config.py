"""Where the CRM lives and how to open it.

Embedded by default (a SQLite file under ``var/``) so one machine runs
everything with nothing to install; any SQLAlchemy URL in ``KEFU_CRM_URL``
(PostgreSQL in production) replaces it without code changes.

SQLite needs some care to behave like a server database under the action
server's concurrency:

* WAL journal, so readers never block the single writer;
* foreign keys on (SQLite leaves them off per connection);
* a busy ``timeout``, so a writer waits for the lock instead of failing;
* connections to a file are pooled (SQLAlchemy 1.4 would open one per use),
  and a pooled connection whose file was moved or replaced is dropped when
  it is checked out;
* Python's sqlite3 module is told not to manage transactions itself and
  SQLAlchemy emits ``BEGIN`` — ``BEGIN IMMEDIATE`` for write transactions
  (see `WRITE_OPTIONS`).  A deferred write transaction in WAL mode that read
  an old snapshot fails with "database is locked" *without* waiting when
  another writer committed meanwhile; taking the write lock up front makes
  concurrent writers queue on the busy timeout instead.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool, StaticPool

ENV_VAR = "KEFU_CRM_URL"

#: Seconds a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_S = 15.0

#: SQLite connections a CRM keeps open for reuse (more are opened, and closed again, under load).
SQLITE_POOL_SIZE = 5

#: Seconds a PostgreSQL connection attempt may take before it counts as down.
CONNECT_TIMEOUT_S = 5

#: A pooled server connection idle longer than this is pinged before use (see `_install_idle_ping`).
PING_AFTER_IDLE_S = 1.0

#: Pass to ``Session.connection(execution_options=...)`` to open a write
#: transaction (``BEGIN IMMEDIATE`` on SQLite; ignored elsewhere).
WRITE_OPTIONS: Mapping[str, Any] = {"kefu_sqlite_begin": "IMMEDIATE"}


def repo_root() -> Path:
    """The repository root (the folder that holds ``crm_adapter/``)."""
    return Path(__file__).resolve().parent.parent


def default_sqlite_path() -> Path:
    return repo_root() / "var" / "crm.sqlite3"


def crm_url(env: Optional[Mapping[str, str]] = None) -> str:
    """The CRM database URL: ``KEFU_CRM_URL`` or the embedded SQLite file."""
    env = os.environ if env is None else env
    url = (env.get(ENV_VAR) or "").strip()
    return url or f"sqlite:///{default_sqlite_path()}"


_SQLITE_SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def make_engine(url: str, *, echo: bool = False, sqlite_synchronous: str = "FULL") -> Engine:
    """Create a 2.0-style engine for ``url`` with the settings described above.

    ``sqlite_synchronous`` is SQLite's `PRAGMA synchronous` for a file
    database (FULL, SQLite's default, for the CRM: a committed complaint
    survives a power cut).  Raises SQLAlchemy's own errors (bad URL, missing
    driver); the service turns them into `CRMUnavailable`.  Nothing connects
    until first use.
    """
    if sqlite_synchronous not in _SQLITE_SYNC_LEVELS:
        raise ValueError(f"sqlite_synchronous must be one of {_SQLITE_SYNC_LEVELS}")
    parsed = make_url(url)
    # hide_parameters: error messages and echo logs would otherwise carry the
    # bound values -- phone numbers, addresses -- into logs.
    kwargs: dict[str, Any] = {"future": True, "echo": echo, "hide_parameters": True}

    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        file_path: Optional[str] = None
        if database in ("", ":memory:"):
            # One shared connection, or every session would see an empty database.
            connect_args["check_same_thread"] = False
            kwargs["poolclass"] = StaticPool
        else:
            if Path(database).resolve() == default_sqlite_path():
                # Only the default location is ours to create; a configured path
                # in a missing folder is a configuration error and must surface.
                default_sqlite_path().parent.mkdir(parents=True, exist_ok=True)
            # SQLAlchemy 1.4 opens a new connection per use for a file (NullPool):
            # with our PRAGMAs and SQLite re-reading the schema, that was a third
            # of a customer_profile lookup. Pooled, as SQLAlchemy 2.0 does; a
            # connection may move between threads but is used by one at a time.
            connect_args["check_same_thread"] = False
            kwargs["poolclass"] = QueuePool
            kwargs["pool_size"] = SQLITE_POOL_SIZE
            kwargs["max_overflow"] = -1  # beyond the pool, open more rather than make anyone wait
            file_path = database
        kwargs["connect_args"] = connect_args
        engine = create_engine(url, **kwargs)
        _install_sqlite_events(engine, file_path, sqlite_synchronous)
        return engine

    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(url, **kwargs)
    _install_idle_ping(engine)
    return engine


def _install_idle_ping(engine: Engine) -> None:
    """Ping a pooled connection at checkout when it sat idle for over `PING_AFTER_IDLE_S`.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: one more round
    trip per CRM call, a quarter of a profile lookup's four on PostgreSQL
    (and each costs a server wake-up, up to a millisecond on a busy machine).
    A connection that finished a statement a moment ago is alive unless the
    server went down in that moment, and then the statement's disconnect
    error makes SQLAlchemy drop the whole pool, so only that one call fails
    (`CRM.customer_profile` retries it). A ping that fails raises
    DisconnectionError: the pool discards the connection and checks out
    another, as with pre-ping.
    """
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["kefu_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("kefu_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_S:
            return
        # The dialect's own ping, as pre-ping uses it (psycopg2: SELECT 1 outside a transaction).
        if not engine.dialect.do_ping(dbapi_connection):
            raise DisconnectionError("an idle pooled connection failed its ping")


def _file_identity(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _install_sqlite_events(engine: Engine, file_path: Optional[str] = None, synchronous: str = "FULL") -> None:
    busy_ms = int(SQLITE_BUSY_TIMEOUT_S * 1000)

    if file_path is not None:
        @event.listens_for(engine, "connect")
        def _remember_file(_dbapi_connection: Any, record: Any) -> None:
            record.info["kefu_file"] = _file_identity(file_path)

        @event.listens_for(engine, "checkout")
        def _same_file(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            # A pooled connection keeps its file open: if the database was
            # moved, deleted or replaced (a restore), it would go on reading
            # the old one. Reconnecting instead gives what opening the path
            # gives (an error, or the new file), as a fresh connection would.
            if record.info.get("kefu_file") != _file_identity(file_path):
                raise DisconnectionError("the SQLite database file was moved or replaced")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            _switch_to_wal(cursor, SQLITE_BUSY_TIMEOUT_S)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("kefu_sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def pooled_sqlite_engine(engine: Engine, *, synchronous: str = "FULL") -> Engine:
    """`make_engine`'s engine for a SQLite file engine created elsewhere; others unchanged.

    For Rasa's tracker store and event broker, which create plain engines:
    SQLAlchemy 1.4 opens and closes a SQLite connection per session there,
    and in WAL mode closing the last connection checkpoints the log into the
    database and deletes it, so every saved turn paid a checkpoint.  The
    replacement keeps connections (and the WAL journal, busy timeout and
    BEGIN handling above).  The caller disposes of the old engine.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return engine
    return make_engine(engine.url.render_as_string(hide_password=False), sqlite_synchronous=synchronous)


def _switch_to_wal(cursor: Any, timeout_s: float) -> None:
    """Put the database file in WAL mode (it stays so), waiting out other connections.

    Switching the journal mode needs the file to itself, and SQLite answers
    "database is locked" at once instead of calling the busy handler — so
    several processes opening a brand-new database together (the action server
    and a migration, say) could fail.  A file already in WAL mode needs no switch.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
