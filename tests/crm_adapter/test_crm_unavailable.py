"""Every method turns an unreachable database into CRMUnavailable, and nothing else."""
from __future__ import annotations

import inspect
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest

from sqlalchemy import select

from crm_adapter import CRM, errors
from crm_adapter.backends.rest import RestDirectory, RestSettings
from crm_adapter.retention import RetentionOffer

ADDRESS = "上海市徐汇区漕溪北路88号"

CALLS: dict[str, Callable[[CRM], Any]] = {
    "create_schema": lambda c: c.create_schema(),
    "is_empty": lambda c: c.is_empty(),
    "resolve_identity": lambda c: c.resolve_identity("rest", "demo-zhangwei"),
    "bind_identity": lambda c: c.bind_identity("rest", "x", 1, "k:1:bind"),
    "verify_by_order": lambda c: c.verify_by_order("260101000021", "1111"),
    "get_customer": lambda c: c.get_customer(1),
    "latest_order": lambda c: c.latest_order(1),
    "get_order": lambda c: c.get_order(1, "260101000001"),
    "recent_orders": lambda c: c.recent_orders(1),
    "cancel_order": lambda c: c.cancel_order(1, "260101000002", "k:1:cancel"),
    "change_address": lambda c: c.change_address(1, "260101000002", ADDRESS, "k:1:addr"),
    "create_return": lambda c: c.create_return(1, "260101000003", "不喜欢", "k:1:ret"),
    "returns_for_customer": lambda c: c.returns_for_customer(1),
    "membership": lambda c: c.membership(1),
    "update_profile": lambda c: c.update_profile(1, "name", "张三", "k:1:profile"),
    "set_marketing_consent": lambda c: c.set_marketing_consent(1, "sms", "marketing", True, "chat", "k:1:c"),
    "list_products": lambda c: c.list_products(),
    "find_products": lambda c: c.find_products("耳机"),
    "recommend": lambda c: c.recommend(1),
    "create_payment_ticket": lambda c: c.create_payment_ticket(1, "failed", "x", "k:1:pay"),
    "create_invoice_request": lambda c: c.create_invoice_request(1, "260101000003", "个人", None,
                                                                 "a@example.com", "k:1:inv"),
    "create_complaint": lambda c: c.create_complaint(1, "quality", "坏了", "rest", "s", "k:1:complaint"),
    "complaints_for_customer": lambda c: c.complaints_for_customer(1),
    "get_complaint": lambda c: c.get_complaint(1, "TS202601010001"),
    "create_escalation": lambda c: c.create_escalation(1, "rest", "s", "request_human", "k:1:esc"),
    "record_csat": lambda c: c.record_csat(1, "rest", "s", 5, "k:1:csat"),
    "record_interaction": lambda c: c.record_interaction(1, "rest", "s", "faq", "问运费"),
    "customer_profile": lambda c: c.customer_profile(1),
    "kpis": lambda c: c.kpis(datetime(2026, 1, 1), datetime(2026, 2, 1)),
    "refresh_analytics": lambda c: c.refresh_analytics(),
    "record_nps": lambda c: c.record_nps(1, "rest", "s", 9, "k:1:nps"),
    "retention_offer": lambda c: c.retention_offer(1, "wechat", "k:1:ret", offer=RetentionOffer("回归礼券", 30.0, 0.0, 14, 90)),
    "set_consent": lambda c: c.set_consent(1, "sms", "marketing", True, "chat", "k:1:consent"),
    "consent_status": lambda c: c.consent_status(1, "sms", "marketing"),
    "consent_history": lambda c: c.consent_history(1),
    "set_quiet_hours": lambda c: c.set_quiet_hours(1, "22:00", "08:00", "k:1:quiet"),
    "quiet_hours": lambda c: c.quiet_hours(1),
    "may_contact": lambda c: c.may_contact(1, "sms", "marketing"),
    "export_customer": lambda c: c.export_customer(1),
    "erase_customer": lambda c: c.erase_customer(1, "k:1:erase"),
    "drain_outbox": lambda c: _with_company_crm(c).drain_outbox(),
    "run_unit": lambda c: c.run_unit(lambda session, now: session.execute(select(1)).scalar(), write=True),
}

def _with_company_crm(crm: CRM) -> CRM:
    """The outbox lives in our database only when a company CRM is configured."""
    crm.directory = RestDirectory(RestSettings(base_url="http://127.0.0.1:9", token="t"))
    return crm


# care and desk are the care send log and the service desk over the same database (own tests).
NOT_DATABASE_METHODS = {"from_env", "dispose", "engine", "analytics_settings", "care", "desk"}


def test_every_public_method_is_covered_and_guarded() -> None:
    public = {name for name, _ in inspect.getmembers(CRM) if not name.startswith("_")}
    assert public - NOT_DATABASE_METHODS - {"url"} == set(CALLS)
    for name in CALLS:
        assert hasattr(getattr(CRM, name), "__wrapped__"), f"{name} is not @_guarded"


def _unreachable_urls(tmp_path: Path) -> list[str]:
    return [
        f"sqlite:///{tmp_path / 'no-such-dir' / 'crm.sqlite3'}",
        "postgresql://kefu@127.0.0.1:1/kefu",
        "nosuchdialect://host/db",
    ]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["sqlite-missing-dir", "postgres-closed-port", "bad-url"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_unreachable_database_raises_crm_unavailable(tmp_path: Path, which: int, name: str) -> None:
    crm = CRM(_unreachable_urls(tmp_path)[which])
    with pytest.raises(errors.CRMUnavailable) as info:
        CALLS[name](crm)
    assert "13800138000" not in str(info.value)
    crm.dispose()


def test_constructing_a_crm_does_not_connect(tmp_path: Path) -> None:
    CRM(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.sqlite3'}")  # no error until used


def test_database_lost_after_it_worked(template_db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copyfile(template_db, folder / "crm.sqlite3")
    crm = CRM(f"sqlite:///{folder / 'crm.sqlite3'}")
    assert crm.get_customer(1).name == "张伟"
    folder.rename(tmp_path / "moved")  # the folder disappears under the CRM
    with pytest.raises(errors.CRMUnavailable):
        crm.get_customer(1)
    with pytest.raises(errors.CRMUnavailable):
        crm.create_complaint(1, "quality", "坏了", "rest", "s", "k:2:complaint")
    crm.dispose()
