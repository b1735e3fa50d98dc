"""Configuration, engine settings and the view codec."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_adapter import CRM, config, views
from crm_adapter.seed import seed


def test_url_default_and_env() -> None:
    default = config.crm_url({})
    assert default == f"sqlite:///{config.repo_root() / 'var' / 'crm.sqlite3'}"
    assert config.crm_url({"KEFU_CRM_URL": "  "}) == default
    assert config.crm_url({"KEFU_CRM_URL": "postgresql://u@h/db"}) == "postgresql://u@h/db"


def test_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    monkeypatch.setenv("KEFU_CRM_URL", url)
    crm = CRM.from_env()
    assert crm.url == url
    crm.create_schema()
    assert crm.is_empty()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # SQLite's own settings
def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(crm: CRM) -> None:
    with crm.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == int(config.SQLITE_BUSY_TIMEOUT_S * 1000)
        # The CRM waits for the disk at commit: a committed complaint survives a power cut.
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_foreign_keys_are_enforced(crm: CRM) -> None:
    with pytest.raises(IntegrityError):
        with crm.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO orders (order_number, customer_id, status, total, address, created_at) "
                "VALUES ('999999999999', 424242, 'paid', 1, 'x', '2026-01-01')"
            ))


def test_in_memory_database_is_shared_across_sessions() -> None:
    crm = CRM("sqlite://")
    seed(crm, customers=3)
    assert crm.get_customer(1).name == "张伟"
    assert crm.cancel_order(1, "260101000002", "k:1:cancel").outcome == "done"
    assert crm.get_order(1, "260101000002").status == "cancelled"


def test_repr_hides_credentials() -> None:
    assert "secret" not in repr(CRM("postgresql://kefu:secret@db.example.com/kefu"))


def test_is_empty(empty_crm: CRM, crm: CRM, tmp_path: Path) -> None:
    assert CRM(f"sqlite:///{tmp_path / 'fresh.sqlite3'}").is_empty()  # no tables at all
    assert empty_crm.is_empty()
    assert not crm.is_empty()


def test_views_are_frozen_and_round_trip_through_json(crm: CRM) -> None:
    order = crm.get_order(1, "260101000003")
    with pytest.raises(FrozenInstanceError):
        order.status = "cancelled"  # type: ignore[misc]
    for value in (order, views.OrderChange("done", order), crm.membership(1), crm.get_customer(1),
                  crm.complaints_for_customer(1)[0], None):
        encoded = json.loads(json.dumps(views.encode(value)))
        assert views.decode(encoded) == value
    decoded = views.decode(json.loads(json.dumps(views.encode(order))))
    assert decoded.created_at.tzinfo is not None and decoded.created_at.utcoffset().total_seconds() == 8 * 3600
    assert isinstance(decoded.items, tuple)


def test_find_in_text_picks_values_out_of_sentences() -> None:
    from crm_adapter.validation import find_in_text

    assert find_in_text("mobile", "我的电话是13912345678，谢谢") == "13912345678"
    assert find_in_text("mobile", "订单号260101000001") is None  # 12 digits are not a phone
    assert find_in_text("mobile", "139123456789") is None        # too long
    assert find_in_text("email", "发到 li.na@example.com.cn 吧") == "li.na@example.com.cn"
    assert find_in_text("email", "邮箱是 foo@bar") is None
    assert find_in_text("tax_number", "税号 91310000mA1fl1234x") == "91310000MA1FL1234X"
    assert find_in_text("tax_number", "税号 9131000MA1FL1234X") is None  # 17 characters
    assert find_in_text("mobile", None) is None


def test_find_in_text_birthdays() -> None:
    from crm_adapter.validation import find_in_text

    assert find_in_text("birthday", "我生日是1990年5月3日哦") == "1990年5月3日"
    assert find_in_text("birthday", "改成 1990-05-03") == "1990-05-03"
    assert find_in_text("birthday", "19900503") == "19900503"
    assert find_in_text("birthday", "订单260101000001") is None
