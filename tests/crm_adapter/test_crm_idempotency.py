"""Idempotency keys, all-or-nothing writes, and concurrent writers.

Failures "midway" are made by the database itself: a trigger that aborts the
insert into processed_operations, which every write performs last, after its
change is already flushed. Nothing is mocked.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from sqlalchemy import select, text

from crm_adapter import CRM, errors
from crm_adapter.errors import IdempotencyConflict
from crm_adapter.models import (
    ChannelIdentity,
    Complaint,
    Consent,
    CsatRating,
    Customer,
    Escalation,
    InvoiceRequest,
    Order,
    PaymentTicket,
    ProcessedOperation,
    ReturnRequest,
)

ZHANG, LINA, WANG = 1, 2, 3

# name -> (call with a key, model whose rows the call adds or None)
WRITES: dict[str, tuple[Callable[[CRM, str], Any], Any]] = {
    "bind_identity": (lambda crm, k: crm.bind_identity("wechat", "oNew", WANG, k), ChannelIdentity),
    "cancel_order": (lambda crm, k: crm.cancel_order(ZHANG, "260101000002", k), None),
    "change_address": (
        lambda crm, k: crm.change_address(ZHANG, "260101000002", "上海市徐汇区漕溪北路88号", k), None),
    "create_return": (lambda crm, k: crm.create_return(ZHANG, "260101000003", "不喜欢", k), ReturnRequest),
    "update_profile": (lambda crm, k: crm.update_profile(WANG, "email", "w@example.com", k), None),
    "set_marketing_consent": (
        lambda crm, k: crm.set_marketing_consent(WANG, "sms", "marketing", True, "chat", k), Consent),
    "create_payment_ticket": (
        lambda crm, k: crm.create_payment_ticket(WANG, "double_charged", "扣了两次", k), PaymentTicket),
    "create_invoice_request": (
        lambda crm, k: crm.create_invoice_request(WANG, "260101000021", "个人", None, "w@example.com", k),
        InvoiceRequest),
    "create_complaint": (
        lambda crm, k: crm.create_complaint(WANG, "logistics", "太慢", "rest", "s", k), Complaint),
    "create_escalation": (
        lambda crm, k: crm.create_escalation(WANG, "rest", f"s-{k}", "request_human", k), Escalation),
    "record_csat": (lambda crm, k: crm.record_csat(WANG, "rest", "s", 5, k), CsatRating),
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_same_key_twice_writes_once_and_returns_the_first_result(crm: CRM, count, name: str) -> None:
    call, model = WRITES[name]
    before = count(model) if model is not None else 0
    first = call(crm, "sender:m1:op")
    second = call(crm, "sender:m1:op")
    assert second == first
    assert type(second) is type(first)
    if model is not None:
        assert count(model) == before + 1
    assert count(ProcessedOperation, ProcessedOperation.idempotency_key == "sender:m1:op") == 1


def test_repeat_returns_the_first_outcome_not_a_new_one(crm: CRM) -> None:
    first = crm.cancel_order(ZHANG, "260101000002", "s:m1:cancel")
    assert first.outcome == "done"
    assert crm.cancel_order(ZHANG, "260101000002", "s:m1:cancel") == first  # not "already"
    assert crm.cancel_order(ZHANG, "260101000002", "s:m2:cancel").outcome == "already"


def test_a_key_reused_for_another_operation_is_refused(crm: CRM) -> None:
    crm.cancel_order(ZHANG, "260101000002", "s:m1:x")
    with pytest.raises(IdempotencyConflict) as info:
        crm.change_address(ZHANG, "260101000002", "上海市徐汇区漕溪北路88号", "s:m1:x")
    assert isinstance(info.value, errors.InvalidInput) and info.value.message_zh


def test_a_refused_call_does_not_use_up_its_key(crm: CRM, count) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.update_profile(WANG, "email", "broken", "s:m1:profile")
    customer = crm.update_profile(WANG, "email", "fixed@example.com", "s:m1:profile")
    assert customer.masked_email == "f***@example.com"
    assert count(ProcessedOperation) == 1


def test_idempotency_key_is_required(crm: CRM) -> None:
    with pytest.raises(errors.InvalidInput):
        crm.cancel_order(ZHANG, "260101000002", "")


def _fail_inserts_into(crm: CRM, table: str) -> None:
    """Make every INSERT into ``table`` fail, as a full disk or a lost connection would."""
    with crm.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(
                "CREATE FUNCTION kefu_fail() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
            ))
            conn.execute(text(
                f"CREATE TRIGGER injected_failure BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION kefu_fail()"
            ))
        else:
            conn.execute(text(
                f"CREATE TRIGGER injected_failure BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ))


def _stop_failing(crm: CRM, table: str) -> None:
    with crm.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER injected_failure ON {table}"))
            conn.execute(text("DROP FUNCTION kefu_fail()"))
        else:
            conn.execute(text("DROP TRIGGER injected_failure"))


def test_cancel_that_fails_midway_leaves_nothing(crm: CRM, db, count) -> None:
    spent_before = crm.get_customer(ZHANG).total_spent
    _fail_inserts_into(crm, "processed_operations")
    with pytest.raises(errors.CRMUnavailable):
        crm.cancel_order(ZHANG, "260101000002", "s:m1:cancel")
    with db() as session:
        order = session.execute(select(Order).where(Order.order_number == "260101000002")).scalar_one()
        assert (order.status, order.cancelled_at) == ("paid", None)
        assert session.get(Customer, ZHANG).total_spent == spent_before
    assert count(ProcessedOperation) == 0


def test_return_that_fails_midway_leaves_nothing(crm: CRM, count) -> None:
    returns_before = count(ReturnRequest)
    _fail_inserts_into(crm, "processed_operations")
    with pytest.raises(errors.CRMUnavailable):
        crm.create_return(ZHANG, "260101000003", "不喜欢", "s:m1:return")
    assert count(ReturnRequest) == returns_before
    assert crm.get_order(ZHANG, "260101000003").can_return


def test_complaint_that_fails_leaves_no_key_behind(crm: CRM, count) -> None:
    _fail_inserts_into(crm, "complaints")
    with pytest.raises(errors.CRMUnavailable):
        crm.create_complaint(WANG, "quality", "坏了", "rest", "s", "s:m1:complaint")
    assert count(ProcessedOperation) == 0
    _stop_failing(crm, "complaints")
    # The same key works once the database behaves again.
    assert crm.create_complaint(WANG, "quality", "坏了", "rest", "s", "s:m1:complaint").status == "open"


def _in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except errors.CRMError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_repeats_of_one_key_write_once(crm: CRM, count) -> None:
    results = _in_parallel([
        lambda: crm.create_complaint(WANG, "logistics", "太慢", "rest", "race", "race:m1:complaint")
        for _ in range(8)
    ])
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.ticket_number for r in results}) == 1
    assert count(Complaint, Complaint.sender_id == "race") == 1


def test_concurrent_writers_get_distinct_ticket_numbers(crm: CRM, count) -> None:
    results = _in_parallel([
        (lambda i=i: crm.create_complaint(WANG, "logistics", "太慢", "rest", "race", f"race:m{i}:complaint"))
        for i in range(8)
    ])
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.ticket_number for r in results}) == 8
    assert count(Complaint, Complaint.sender_id == "race") == 8


def test_concurrent_returns_for_one_order_create_one(crm: CRM, count) -> None:
    before = count(ReturnRequest)
    results = _in_parallel([
        (lambda i=i: crm.create_return(ZHANG, "260101000003", "不喜欢", f"race:m{i}:return"))
        for i in range(4)
    ])
    created = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, errors.InvalidInput)]
    assert len(created) == 1 and len(refused) == 3
    assert count(ReturnRequest) == before + 1
