"""Payment tickets, invoices, complaints, escalations, ratings and interactions."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_adapter import CRM, errors, views
from crm_adapter.models import Complaint, CsatRating, Escalation, Interaction, InvoiceRequest

ZHANG, LINA, WANG = 1, 2, 3


def _china_day(crm_clock) -> str:
    return crm_clock().astimezone(views.CHINA_TZ).strftime("%Y%m%d")


# -- payment tickets -----------------------------------------------------

def test_payment_ticket(crm: CRM, key, clock) -> None:
    ticket = crm.create_payment_ticket(WANG, "double_charged", "付款扣了两次", key("pay"),
                                       order_number="260101000021")
    assert isinstance(ticket, views.TicketView)
    assert re.fullmatch(rf"PT{_china_day(clock)}\d{{4}}", ticket.ticket_number)
    assert (ticket.problem_label, ticket.status, ticket.order_number) == ("重复扣款", "open", "260101000021")
    other = crm.create_payment_ticket(WANG, "charged_no_order", "", key("pay"))
    assert other.order_number is None and other.ticket_number != ticket.ticket_number


def test_payment_ticket_refusals(crm: CRM, key) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.create_payment_ticket(WANG, "stolen_card", "x", key("pay"))
    with pytest.raises(errors.InvalidInput):  # not her order
        crm.create_payment_ticket(WANG, "failed", "x", key("pay"), order_number="260101000001")
    with pytest.raises(errors.NotFound):
        crm.create_payment_ticket(99999, "failed", "x", key("pay"))


# -- invoices ------------------------------------------------------------

def test_company_invoice(crm: CRM, key) -> None:
    request = crm.create_invoice_request(ZHANG, "260101000003", "上海某某科技有限公司",
                                         "91310115ma1k4abc2x", "Finance@Example.com", key("inv"))
    assert isinstance(request, views.InvoiceRequestView)
    assert request.request_number.startswith("FP")
    assert request.tax_number == "91310115MA1K4ABC2X"
    assert request.masked_email == "F***@example.com"
    assert (request.status, request.status_label) == ("requested", "已提交，开具中")


def test_personal_invoice_needs_no_tax_number(crm: CRM, key) -> None:
    request = crm.create_invoice_request(WANG, "260101000021", "个人", None, "wf@example.com", key("inv"))
    assert request.tax_number is None


@pytest.mark.parametrize(
    "number, title, tax, email, fragment",
    [
        ("260101000003", "上海某某科技有限公司", None, "a@example.com", "税号"),
        ("260101000003", "上海某某科技有限公司", "123", "a@example.com", "税号"),
        ("260101000003", "个人", None, "not-mail", "邮箱"),
        ("260101000003", "", None, "a@example.com", "抬头"),
        ("260101000004", "个人", None, "a@example.com", "已取消"),
        ("260101000011", "个人", None, "a@example.com", "没有查到"),
    ],
)
def test_invoice_refusals(crm: CRM, key, count, number, title, tax, email, fragment) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_invoice_request(ZHANG, number, title, tax, email, key("inv"))
    assert fragment in info.value.message_zh
    assert count(InvoiceRequest) == 0


def test_one_invoice_per_order(crm: CRM, key) -> None:
    first = crm.create_invoice_request(ZHANG, "260101000003", "个人", None, "a@example.com", key("inv"))
    with pytest.raises(errors.InvalidInput) as info:
        crm.create_invoice_request(ZHANG, "260101000003", "个人", None, "a@example.com", key("inv"))
    assert first.request_number in info.value.message_zh


# -- complaints ----------------------------------------------------------

@pytest.mark.parametrize(
    "customer, category, description, severity, hours",
    [
        (WANG, "quality", "充电宝充电的时候冒烟了", "high", 4),
        (WANG, "service", "再不处理我就打12315", "high", 4),
        (WANG, "other", "我要找律师起诉你们", "high", 4),
        (ZHANG, "quality", "耳机有杂音", "high", 4),  # core customer
        (ZHANG, "after_sales", "退款太慢", "high", 4),  # core customer
        (ZHANG, "logistics", "快递太慢", "medium", 24),
        (WANG, "quality", "耳机有杂音", "medium", 24),
        (WANG, "logistics", "快递太慢", "medium", 24),
        (WANG, "after_sales", "退款太慢", "medium", 24),
        (ZHANG, "service", "客服态度不好", "low", 48),
        (WANG, "price", "买完就降价", "low", 48),
        (None, "quality", "耳机有杂音", "medium", 24),
    ],
)
def test_complaint_severity_and_sla(crm: CRM, key, clock, customer, category, description,
                                    severity, hours) -> None:
    complaint = crm.create_complaint(customer, category, description, "rest", "sender-1", key("c"))
    assert (complaint.severity, complaint.status) == (severity, "open")
    assert complaint.sla_due_at - complaint.created_at == timedelta(hours=hours)
    assert complaint.severity_label == views.SEVERITY_LABELS[severity]
    assert complaint.category_label == views.COMPLAINT_CATEGORY_LABELS[category]
    assert complaint.status_label == "已受理，待处理"


def test_complaint_ticket_numbers_are_daily_sequences(crm: CRM, key, clock) -> None:
    day = _china_day(clock)
    numbers = [crm.create_complaint(WANG, "other", f"问题{i}", "rest", "s", key("c")).ticket_number
               for i in range(3)]
    assert all(re.fullmatch(rf"TS{day}\d{{4}}", n) for n in numbers)
    sequences = [int(n[-4:]) for n in numbers]
    assert sequences == list(range(sequences[0], sequences[0] + 3))


def test_complaint_links_only_the_customers_own_order(crm: CRM, key, db) -> None:
    own = crm.create_complaint(ZHANG, "logistics", "慢", "rest", "s", key("c"), order_number="260101000001")
    theirs = crm.create_complaint(WANG, "logistics", "慢", "rest", "s", key("c"), order_number="260101000001")
    with db() as session:
        rows = {c.ticket_number: c for c in session.execute(select(Complaint)).scalars()}
    assert rows[own.ticket_number].order_id is not None
    assert rows[theirs.ticket_number].order_id is None  # kept as reported text only
    assert theirs.order_number == "260101000001"


def test_anonymous_complaint_with_contact_phone(crm: CRM, key, db) -> None:
    complaint = crm.create_complaint(None, None, "收到的东西坏了，电话13912345678", "rest", "anon-1",
                                     key("c"), contact_phone="13912345678")
    assert complaint.category == "other"
    assert complaint.masked_contact_phone == "139****5678"
    assert "13912345678" not in complaint.description  # the description is stored masked
    with db() as session:
        row = session.execute(select(Complaint).where(
            Complaint.ticket_number == complaint.ticket_number)).scalar_one()
    assert row.customer_id is None and row.contact_phone == "13912345678"


def test_complaint_refusals(crm: CRM, key) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.create_complaint(WANG, "weather", "x", "rest", "s", key("c"))
    with pytest.raises(errors.InvalidInput):
        crm.create_complaint(WANG, "quality", "   ", "rest", "s", key("c"))
    with pytest.raises(errors.InvalidInput):
        crm.create_complaint(WANG, "quality", "坏了", "rest", "s", key("c"), contact_phone="123")


def test_complaint_for_vanished_customer_is_kept_anonymous(crm: CRM, key) -> None:
    complaint = crm.create_complaint(424242, "quality", "坏了", "rest", "s", key("c"))
    assert complaint.status == "open"


def test_complaints_for_customer_and_open_only(crm: CRM, key, db) -> None:
    seeded = crm.complaints_for_customer(ZHANG)
    assert [c.status for c in seeded] == ["open"]
    assert seeded[0].order_number == "260101000003" and seeded[0].severity == "high"
    new = crm.create_complaint(ZHANG, "service", "态度差", "rest", "s", key("c"))
    with db() as session:
        row = session.execute(select(Complaint).where(Complaint.ticket_number == seeded[0].ticket_number)).scalar_one()
        row.status = "resolved"
        session.commit()
    assert [c.ticket_number for c in crm.complaints_for_customer(ZHANG, open_only=True)] == [new.ticket_number]
    assert len(crm.complaints_for_customer(ZHANG)) == 2
    assert crm.complaints_for_customer(LINA) == []


def test_get_complaint_never_leaks(crm: CRM) -> None:
    ticket = crm.complaints_for_customer(ZHANG)[0].ticket_number
    assert crm.get_complaint(ZHANG, ticket).ticket_number == ticket
    assert crm.get_complaint(ZHANG, ticket.lower()).ticket_number == ticket
    assert crm.get_complaint(LINA, ticket) is None
    assert crm.get_complaint(ZHANG, "TS209901010001") is None
    with pytest.raises(errors.InvalidInput):
        crm.get_complaint(ZHANG, "12345")


# -- escalations ---------------------------------------------------------

@pytest.mark.parametrize(
    "customer, reason, priority",
    [
        (ZHANG, "request_human", "high"),  # core tier
        (LINA, "request_human", "normal"),
        (None, "request_human", "normal"),
        (LINA, "东西冒烟了", "high"),
    ],
)
def test_escalation_priority(crm: CRM, key, customer, reason, priority) -> None:
    escalation = crm.create_escalation(customer, "rest", f"s-{customer}", reason, key("e"))
    assert isinstance(escalation, views.EscalationView)
    assert (escalation.status, escalation.priority) == ("pending", priority)
    assert escalation.status_label == "排队中" and escalation.reason == reason


def test_escalation_linked_to_high_complaint_is_high(crm: CRM, key) -> None:
    complaint = crm.create_complaint(WANG, "quality", "起火了", "rest", "wang-chat", key("c"))
    escalation = crm.create_escalation(WANG, "rest", "wang-chat", "high_severity_complaint", key("e"),
                                       complaint_ticket=complaint.ticket_number)
    assert escalation.priority == "high" and escalation.complaint_ticket == complaint.ticket_number


def test_anonymous_escalation_can_link_its_own_complaint(crm: CRM, key) -> None:
    complaint = crm.create_complaint(None, "quality", "爆炸了", "rest", "anon-9", key("c"))
    escalation = crm.create_escalation(None, "rest", "anon-9", "high_severity_complaint", key("e"),
                                       complaint_ticket=complaint.ticket_number)
    assert escalation.complaint_ticket == complaint.ticket_number
    with pytest.raises(errors.InvalidInput):  # another conversation's complaint
        crm.create_escalation(None, "rest", "anon-10", "x", key("e"), complaint_ticket=complaint.ticket_number)


def test_escalation_cannot_link_someone_elses_complaint(crm: CRM, key) -> None:
    ticket = crm.complaints_for_customer(ZHANG)[0].ticket_number
    with pytest.raises(errors.InvalidInput):
        crm.create_escalation(LINA, "rest", "lina-chat", "投诉跟进", key("e"), complaint_ticket=ticket)


def test_one_active_escalation_per_conversation(crm: CRM, key, count) -> None:
    first = crm.create_escalation(LINA, "rest", "lina-chat", "request_human", key("e"))
    second = crm.create_escalation(LINA, "rest", "lina-chat", "孩子过敏了", key("e"))
    assert second.id == first.id and second.priority == "high"
    assert count(Escalation, Escalation.sender_id == "lina-chat") == 1


# -- ratings and interactions --------------------------------------------

def test_record_csat(crm: CRM, key, db) -> None:
    assert crm.record_csat(ZHANG, "rest", "s", 5, key("csat"), comment="很好，有事打13800138000") is None
    crm.record_csat(None, "rest", "anon", "4", key("csat"))
    with db() as session:
        rows = session.execute(select(CsatRating).order_by(CsatRating.id.desc()).limit(2)).scalars().all()
    assert [(r.customer_id, r.score) for r in rows] == [(None, 4), (ZHANG, 5)]
    assert rows[1].comment == "很好，有事打138****8000"


@pytest.mark.parametrize("score", [0, 6, 4.5, True, "五星", None])
def test_record_csat_refuses_scores_outside_1_to_5(crm: CRM, key, score) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        crm.record_csat(ZHANG, "rest", "s", score, key("csat"))
    assert "1到5分" in info.value.message_zh


def test_record_interaction(crm: CRM, db) -> None:
    assert crm.record_interaction(ZHANG, "rest", "s", "order_query", "查询订单，手机13800138000") is None
    crm.record_interaction(None, "rest", "anon", "faq", "问运费")
    with db() as session:
        rows = session.execute(select(Interaction).order_by(Interaction.id)).scalars().all()
    assert [(r.customer_id, r.kind) for r in rows[-2:]] == [(ZHANG, "order_query"), (None, "faq")]
    assert "13800138000" not in rows[-2].summary
