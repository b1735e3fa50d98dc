"""Upgrading a populated SQLite CRM from the desk's schema (0005) to head.

SQLite cannot alter some things in place; Alembic then rebuilds the table,
which fails once other tables' foreign keys point at rows in it.  A database
people already use (complaints with escalations, staff with sessions) must
upgrade in place, keeping its rows.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from crm_adapter import CRM, migrate

NOW = "2026-11-23 08:00:00"
ROWS = [
    "INSERT INTO customers (id, name, member_level, points, points_expiring, tier, lifecycle_stage, total_spent,"
    " created_at, timezone, deleted) VALUES (1, '张伟', '金卡', 0, 0, 'core', 'loyalty', 0, :now, 'Asia/Shanghai', 0)",
    "INSERT INTO complaints (id, ticket_number, customer_id, category, description, severity, status, channel,"
    " sender_id, sla_due_at, created_at) VALUES (1, 'TS202611230001', 1, 'logistics', '快递丢了', 'medium', 'open',"
    " 'web', 's1', :now, :now)",
    "INSERT INTO escalations (id, customer_id, complaint_id, status, priority, reason, channel, sender_id, created_at,"
    " callback) VALUES (1, 1, 1, 'pending', 'high', 'request_human', 'web', 's1', :now, 0)",
    "INSERT INTO staff (id, username, display_name, role, password_hash, max_open, status, active, failed_logins,"
    " created_at) VALUES (1, 'alice', '小艾', 'agent', 'x', 5, 'online', 1, 0, :now)",
    "INSERT INTO staff_sessions (id, token_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at)"
    " VALUES (1, 'h', 1, 'c', :now, :now, :now)",
]


def test_populated_sqlite_upgrades_from_0005_to_head(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    migrate.upgrade(crm.engine, "0005")
    with crm.engine.begin() as connection:
        for statement in ROWS:
            connection.execute(text(statement), {"now": NOW})
    crm.create_schema()  # to head, as `make run` does on an existing installation
    assert migrate.current(crm.engine) == migrate.upgrade(crm.engine)  # at head already
    with crm.engine.connect() as connection:
        for table in ("customers", "complaints", "escalations", "staff", "staff_sessions"):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1, table
        assert connection.execute(text("SELECT reopened_count, pii_access FROM complaints, staff")).one() == (0, 0)
    crm.dispose()
