"""Export everything about a customer; erase it while keeping the statistics."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_adapter import CRM, errors, privacy
from crm_adapter.models import (
    ChannelIdentity,
    Complaint,
    Consent,
    CsatRating,
    Interaction,
    Order,
    ProcessedOperation,
)

ZHANG, LINA, WANG = 1, 2, 3
ZHANG_PII = ("13800138000", "张伟", "张江路100号", "zhang")
SECTIONS = {
    "format", "exported_at", "masked", "customer", "contact_preferences", "identities", "orders",
    "returns", "complaints", "complaint_events", "escalations", "payment_tickets", "invoice_requests", "interactions",
    "consents", "csat_ratings", "coupons", "care_messages", "care_channel_preference", "care_conversations",
}


def _complaint_statistics(crm: CRM) -> list[Any]:
    with crm.engine.connect() as conn:
        return conn.execute(
            select(Complaint.customer_id, Complaint.category, Complaint.severity, Complaint.status,
                   Complaint.created_at, func.count())
            .group_by(Complaint.customer_id, Complaint.category, Complaint.severity, Complaint.status,
                      Complaint.created_at)
            .order_by(Complaint.customer_id, Complaint.created_at)
        ).all()


def _order_statistics(crm: CRM) -> list[Any]:
    with crm.engine.connect() as conn:
        return conn.execute(
            select(Order.order_number, Order.status, Order.total, Order.created_at, Order.delivered_at)
            .where(Order.customer_id == ZHANG).order_by(Order.order_number)
        ).all()


def _pii_activity(crm: CRM, key) -> None:
    """Things Zhang Wei did that leave personal data in free text and stored results."""
    crm.update_profile(ZHANG, "email", "zhang.wei@example.com", key("profile"))
    crm.create_complaint(ZHANG, "logistics", "快递员态度差，打我电话13800138000也不接", "rest",
                         "demo-zhangwei", key("complaint"))
    crm.create_complaint(None, "service", "我叫张伟，客服不理我", "rest", "demo-zhangwei", key("anon"),
                         contact_phone="13800138000")  # before he was verified
    crm.create_escalation(ZHANG, "rest", "demo-zhangwei", "张伟要找人工", key("esc"))
    crm.record_csat(ZHANG, "rest", "demo-zhangwei", 2, key("csat"), comment="张伟不满意")
    crm.record_interaction(None, "rest", "demo-zhangwei", "faq", "张伟问运费")
    crm.create_invoice_request(ZHANG, "260101000003", "个人", None, "zw@example.com", key("inv"))
    crm.create_payment_ticket(ZHANG, "failed", "张伟付款失败", key("pay"))


# -- export ----------------------------------------------------------------


def test_export_holds_everything_and_is_json(crm: CRM, key) -> None:
    _pii_activity(crm, key)
    data = crm.export_customer(ZHANG)
    assert set(data) == SECTIONS
    text = json.dumps(data, ensure_ascii=False)  # JSON-serialisable as it is
    assert data["masked"] is False
    assert data["customer"]["phone"] == "13800138000" and data["customer"]["name"] == "张伟"
    assert sorted((i["channel"], i["external_id"]) for i in data["identities"]) == [
        ("rest", "demo-zhangwei"), ("web", "demo-zhangwei")]
    assert len(data["orders"]) == 10
    headphones = next(o for o in data["orders"] if o["order_number"] == "260101000003")
    assert {i["sku"] for i in headphones["items"]} and all(i["quantity"] > 0 for i in headphones["items"])
    assert len(data["returns"]) == 2
    descriptions = [c["description"] for c in data["complaints"]]
    assert any("客服不理我" in d for d in descriptions)  # left anonymously through his identity
    assert len(data["complaints"]) == 3
    assert len(data["escalations"]) == 1 and len(data["payment_tickets"]) == 1
    assert len(data["invoice_requests"]) == 1 and len(data["interactions"]) == 1
    assert [r["score"] for r in data["csat_ratings"]] == [2]
    assert any(c["channel"] == "wechat" and c["granted"] for c in data["consents"])
    assert {c["code"] for c in data["coupons"]} == {"CPDEMO0001", "CPDEMO0002"}
    assert data["customer"]["created_at"].endswith("+08:00")
    assert "13800138000" in text  # raw: the customer's own copy


def test_masked_export_has_the_shape_but_no_contact_details(crm: CRM, key) -> None:
    _pii_activity(crm, key)
    raw, masked = crm.export_customer(ZHANG), crm.export_customer(ZHANG, masked=True)
    text = json.dumps(masked, ensure_ascii=False)
    for secret in ("13800138000", "zhang.wei@example.com", "张江路100号", "demo-zhangwei", "zw@example.com"):
        assert secret not in text, secret
    assert masked["masked"] is True
    assert masked["customer"]["name"] == "张*"
    assert masked["customer"]["phone"] == "138****8000"
    assert masked["customer"]["birthday"].endswith("-**-**")
    assert {k: len(v) for k, v in masked.items() if isinstance(v, list)} == {
        k: len(v) for k, v in raw.items() if isinstance(v, list)
    }


def test_export_refuses_bad_and_unknown_ids(crm: CRM) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.export_customer("一号")  # type: ignore[arg-type]
    with pytest.raises(errors.NotFound):
        crm.export_customer(99999)


# -- erase -----------------------------------------------------------------


def test_erasure_removes_personal_data_and_keeps_statistics(crm: CRM, key, count) -> None:
    _pii_activity(crm, key)
    complaints, orders = _complaint_statistics(crm), _order_statistics(crm)
    ratings = count(CsatRating)

    report = crm.erase_customer(ZHANG, key("erase"))
    assert report.customer_id == ZHANG and report.identities_removed == 2  # rest and web (seed)
    assert report.records_redacted >= 10
    # profile, two complaints, escalation, invoice, payment ticket (the rating stored no result)
    assert report.stored_results_scrubbed == 6

    view = crm.get_customer(ZHANG)
    assert view.erased and view.name == privacy.ERASED_NAME
    assert (view.masked_phone, view.masked_email, view.masked_address, view.birthday) == ("", "", "", None)
    assert (view.tier, view.member_level, view.total_spent) == ("core", "金卡", pytest.approx(view.total_spent))
    assert crm.resolve_identity("rest", "demo-zhangwei") is None
    assert crm.resolve_identity("web", "demo-zhangwei") is None
    assert crm.verify_by_order("260101000001", "8000") is None
    assert count(ChannelIdentity, ChannelIdentity.customer_id == ZHANG) == 0
    for channel in ("wechat", "sms"):
        for purpose in ("service", "marketing"):
            assert crm.may_contact(ZHANG, channel, purpose) is False

    assert _complaint_statistics(crm) == complaints
    assert _order_statistics(crm) == orders
    assert count(CsatRating) == ratings

    left = json.dumps(crm.export_customer(ZHANG), ensure_ascii=False)
    for secret in (*ZHANG_PII, "客服不理我", "要找人工", "不满意", "问运费", "付款失败", "zw@example.com",
                   "demo-zhangwei", "SF1234567890"):
        assert secret not in left, secret
    with crm.engine.connect() as conn:
        results = conn.execute(
            select(ProcessedOperation.kind, ProcessedOperation.result)
            .where(ProcessedOperation.customer_id == ZHANG)
        ).all()
    assert {kind for kind, result in results if result is not None} == {privacy.ERASURE_KIND}


def test_erasure_is_idempotent(crm: CRM, key, count) -> None:
    k = key("erase")
    first = crm.erase_customer(ZHANG, k)
    assert crm.erase_customer(ZHANG, k) == first  # a retry returns the same report
    consents = count(Consent)
    again = crm.erase_customer(ZHANG, key("erase"))  # a second request, new key
    assert (again.identities_removed, again.records_redacted, again.stored_results_scrubbed) == (0, 0, 0)
    assert again.erased_at == first.erased_at
    assert count(Consent) == consents
    assert count(ProcessedOperation, ProcessedOperation.kind == privacy.ERASURE_KIND) == 2


def test_erased_customer_cannot_act_but_others_are_untouched(crm: CRM, key) -> None:
    lina_before = crm.export_customer(LINA)
    crm.erase_customer(ZHANG, key("erase"))
    assert crm.get_order(ZHANG, "260101000001") is None
    with pytest.raises(errors.NotFound):
        crm.update_profile(ZHANG, "name", "张三", key("profile"))
    with pytest.raises(errors.NotFound):
        crm.set_consent(ZHANG, "sms", "marketing", True, "chat", key("c"))
    lina_after = crm.export_customer(LINA)
    assert {k: v for k, v in lina_after.items() if k != "exported_at"} == {
        k: v for k, v in lina_before.items() if k != "exported_at"
    }
    # His phone number is free again for whoever owns it now.
    assert crm.update_profile(WANG, "phone", "13800138000", key("profile")).masked_phone == "138****8000"


def test_erase_refuses_bad_input_and_writes_nothing(crm: CRM, key, count) -> None:
    operations = count(ProcessedOperation)
    with pytest.raises(errors.InvalidInput):
        crm.erase_customer(0, key("erase"))
    with pytest.raises(errors.InvalidInput):
        crm.erase_customer(ZHANG, "")
    with pytest.raises(errors.NotFound):
        crm.erase_customer(99999, key("erase"))
    assert count(ProcessedOperation) == operations
    assert crm.get_customer(ZHANG).name == "张伟"


def test_erasure_reaches_interactions_left_before_verification(crm: CRM, key, count) -> None:
    crm.record_interaction(None, "rest", "demo-zhangwei", "faq", "我是张伟，地址张江路100号")
    crm.record_interaction(None, "rest", "someone-else", "faq", "张江路100号怎么走")
    crm.erase_customer(ZHANG, key("erase"))
    assert count(Interaction, Interaction.summary.like("%张江路%")) == 1  # only the stranger's


# -- command line ----------------------------------------------------------


def test_command_line_export_and_erase(crm: CRM, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert privacy.main(["--url", crm.url, "export", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["customer"]["phone"] == "13800138000"

    target = tmp_path / "zhang.json"
    assert privacy.main(["--url", crm.url, "export", "1", "--masked", "--output", str(target)]) == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert json.loads(target.read_text(encoding="utf-8"))["customer"]["phone"] == "138****8000"

    assert privacy.main(["--url", crm.url, "erase", "1"]) == 0
    assert "2 identities removed" in capsys.readouterr().out
    assert privacy.main(["--url", crm.url, "erase", "1"]) == 0  # same default key: the same answer
    assert "2 identities removed" in capsys.readouterr().out
    assert crm.get_customer(ZHANG).erased

    assert privacy.main(["--url", crm.url, "export", "99999"]) == 1
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        privacy.main(["--url", crm.url, "forget", "1"])
