"""A full disk under the SQLite CRM: every write fails whole, is reported as
CRMUnavailable (the actions' honest apology), and succeeds once after space returns.

The disk is made full with SQLite's own ``max_page_count`` pragma, set on
every connection: the file may not grow by one page, exactly what
SQLITE_FULL looks like to the application, without root or a loop mount.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from crm_adapter import CRM, errors
from crm_adapter.models import Complaint
from tests.crm_adapter.conftest import sqlite_url

ZHANG = 1


def _cap_file_at_current_size(crm: CRM) -> None:
    def cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    event.listen(crm.engine, "connect", cap)
    crm.engine.dispose()  # pooled connections were opened without the cap


def _complaints(url: str) -> int:
    crm = CRM(url)
    try:
        with crm.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Complaint)).scalar_one()
    finally:
        crm.dispose()


def test_a_full_disk_loses_nothing_and_duplicates_nothing(db_path: Path) -> None:
    url = sqlite_url(db_path)
    before = _complaints(url)
    full = CRM(url)
    _cap_file_at_current_size(full)
    description = "快递包装破损，商品也坏了，" * 60
    written = 0
    with pytest.raises(errors.CRMUnavailable):
        for i in range(400):  # the free pages inside the file run out first
            full.create_complaint(ZHANG, "quality", description, "rest", "disk-full", f"disk-full:{i}")
            written += 1
    failed_key = f"disk-full:{written}"
    full.dispose()
    assert _complaints(url) == before + written  # the failed write left no half row

    roomy = CRM(url)  # space again (no cap): the customer's retry is recorded exactly once
    try:
        first = roomy.create_complaint(ZHANG, "quality", description, "rest", "disk-full", failed_key)
        again = roomy.create_complaint(ZHANG, "quality", description, "rest", "disk-full", failed_key)
        assert first.ticket_number == again.ticket_number
    finally:
        roomy.dispose()
    assert _complaints(url) == before + written + 1


def test_reads_keep_working_while_the_disk_is_full(db_path: Path) -> None:
    crm = CRM(sqlite_url(db_path))
    _cap_file_at_current_size(crm)
    try:
        with pytest.raises(errors.CRMUnavailable):
            for i in range(400):
                crm.create_complaint(ZHANG, "quality", "坏了" * 900, "rest", "disk-full-read", f"dfr:{i}")
        orders = crm.recent_orders(ZHANG)  # the bot can still answer "where is my order"
        assert orders
    finally:
        crm.dispose()
