"""Load a CRM population from a SQLite file into PostgreSQL with COPY (a bench tool, not a migration).

    python -m bench.crm_copy --sqlite var/bench/crm1m.sqlite3 --url postgresql+psycopg2://...

Generating 1,000,000 customers on PostgreSQL through `bench.crm_scale`'s
generator (Core inserts) takes about half an hour; the same population from
the SQLite file ``bench.care_sweep`` / ``bench.crm_scale`` leave takes a few
minutes this way. The target database is brought to the newest migration
first (`CRM.create_schema`), so the data land in the schema Kefu would have
made; every table the two databases share is copied, column by column where
both have it (SQLite's stored text for datetimes, 0/1 for booleans; see
`crm_adapter.analytics.bulk.copy_text`).

For speed, while loading: secondary indexes of the target tables are dropped
and re-created afterwards (same definitions, read from ``pg_indexes``), and
foreign-key triggers are off (``session_replication_role = replica``; the
source is a consistent database, and the throw-away server of
``scripts/postgres.sh`` runs us as superuser). Sequences are moved past the
copied ids, and the database is VACUUM ANALYZEd (statistics for the
planner, and the visibility map that lets the refresh read orders by an
index-only scan, as autovacuum would leave a live database). The SQLite
file is opened read-only. The target tables must be empty.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, MetaData, Table, Text, text
from sqlalchemy.engine import Connection

from crm_adapter import CRM
from crm_adapter.analytics.bulk import FETCH_BATCH, copy_columns

#: Not copied: Alembic's bookkeeping (the target has its own) and SQLite's full-text search tables
#: (derived data the desk rebuilds; PostgreSQL keeps its own search table).
SKIP_PREFIXES = ("alembic_version", "complaint_search", "sqlite_")


def copy_from_sqlite(sqlite_path: Path, url: str) -> dict[str, Any]:
    """Copy every shared table from ``sqlite_path`` into the empty CRM at ``url``; rows and seconds per table."""
    started = time.perf_counter()
    crm = CRM(url)
    crm.create_schema()
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    report: dict[str, Any] = {"tables": {}}
    try:
        metadata = MetaData()
        metadata.reflect(crm.engine)
        present = {row[0] for row in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables = [t for t in metadata.sorted_tables if t.name in present and not t.name.startswith(SKIP_PREFIXES)]
        for column in (c for t in tables for c in t.columns if isinstance(c.type, JSON)):
            column.type = Text()  # SQLite holds the serialised JSON: copied as it is
        with crm.engine.begin() as conn:
            conn.exec_driver_sql("SET session_replication_role = replica")
            indexes = _drop_secondary_indexes(conn, [t.name for t in tables])
            for table in tables:
                t0 = time.perf_counter()
                rows = _copy_table(source, conn, table)
                if rows:
                    report["tables"][table.name] = {"rows": rows, "s": round(time.perf_counter() - t0, 1)}
            t0 = time.perf_counter()
            for definition in indexes:
                conn.exec_driver_sql(definition)
            report["indexes_s"] = round(time.perf_counter() - t0, 1)
            _advance_sequences(conn, tables)
            conn.exec_driver_sql("SET session_replication_role = DEFAULT")
        t0 = time.perf_counter()
        with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        report["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)
    finally:
        source.close()
        crm.dispose()
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _copy_table(source: sqlite3.Connection, conn: Connection, table: Table) -> int:
    """All rows of one table, the columns both sides have, in batches; the row count."""
    source_columns = {row[1] for row in source.execute(f'PRAGMA table_info("{table.name}")')}
    names = [c.name for c in table.columns if c.name in source_columns]
    cursor = source.execute(f'SELECT {", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)} FROM "{table.name}"')
    total = 0
    while True:
        batch = cursor.fetchmany(FETCH_BATCH * 4)
        if not batch:
            return total
        copy_columns(conn, table, dict(zip(names, zip(*batch))))
        total += len(batch)


def _drop_secondary_indexes(conn: Connection, tables: list[str]) -> list[str]:
    """Drop the indexes that back no constraint on ``tables``; their CREATE statements."""
    rows = conn.execute(
        text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ),
        {"tables": tables},
    ).all()
    for name, _ in rows:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def _advance_sequences(conn: Connection, tables: list[Table]) -> None:
    """Serial columns continue after the copied ids, as they would after inserts."""
    for table in tables:
        for column in table.primary_key.columns:
            sequence = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if sequence:
                conn.execute(
                    text(f'SELECT setval(:s, COALESCE((SELECT max("{column.name}") FROM "{table.name}"), 0) + 1, false)'),
                    {"s": sequence},
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sqlite", type=Path, required=True, help="the SQLite CRM file to read (read-only)")
    parser.add_argument("--url", required=True, help="the PostgreSQL CRM to fill (its tables must be empty)")
    args = parser.parse_args()
    print(json.dumps(copy_from_sqlite(args.sqlite, args.url), indent=2))


if __name__ == "__main__":
    main()
