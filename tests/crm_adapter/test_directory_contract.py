"""One contract, three directories: SQL (seeded SQLite), Zoho and REST (fake servers).

Every test here runs against each backend; a behaviour that differs between
them is a bug in one of them, not a choice.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from crm_adapter import errors
from crm_adapter.directory import MSG_PHONE_TAKEN, CustomerDirectory

from .remote_fixtures import Backend, backend, complaint, fake_rest, fake_zoho  # noqa: F401 (fixtures)

ZHANG, LINA, WANG = 1, 2, 3


def test_every_backend_satisfies_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.directory, CustomerDirectory)
    assert backend.directory.name == backend.name


def test_get_customer(backend: Backend) -> None:
    zhang = backend.directory.get_customer(ZHANG)
    assert (zhang.id, zhang.name, zhang.tier) == (ZHANG, "张伟", "core")
    assert zhang.masked_phone == "138****8000"
    assert zhang.masked_email == "z***@example.com"
    assert zhang.masked_address == "上海市浦东新区****"
    assert zhang.birthday == date(1985, 6, 18)
    assert zhang.city == "上海"
    assert backend.directory.get_customer("2").name == "李娜"  # ids arrive from slots as text
    assert backend.directory.get_customer(WANG).masked_email == ""


def test_unknown_customer_is_not_found(backend: Backend) -> None:
    with pytest.raises(errors.NotFound):
        backend.directory.get_customer(987654)


@pytest.mark.parametrize("bad", [None, 0, -1, "abc", 1.5, True])
def test_bad_customer_id_is_invalid_input(backend: Backend, bad: object) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        backend.directory.get_customer(bad)  # type: ignore[arg-type]
    assert "customer_id" in info.value.message_zh


def test_find_customer_by_phone(backend: Backend) -> None:
    assert backend.directory.find_customer_by_phone("13912345678").id == LINA
    assert backend.directory.find_customer_by_phone("+86 139-1234-5678").id == LINA  # normalised first
    assert backend.directory.find_customer_by_phone("13500000000") is None
    with pytest.raises(errors.InvalidInput) as info:
        backend.directory.find_customer_by_phone("12345")
    assert "手机号" in info.value.message_zh


def test_update_profile_each_field(backend: Backend) -> None:
    d = backend.directory
    assert d.update_profile(WANG, "email", "ｗａｎｇ@Example.COM", "t:1:email").masked_email == "w***@example.com"
    assert d.update_profile(WANG, "birthday", "1998年11月21日", "t:1:bday").birthday == date(1998, 11, 21)
    assert d.update_profile(WANG, "address", "四川省成都市锦江区春熙路8号", "t:1:addr").masked_address.startswith("四川省成都市锦江区")
    assert d.update_profile(WANG, "name", "王芳芳", "t:1:name").name == "王芳芳"
    assert d.update_profile(WANG, "phone", "13700002222", "t:1:phone").masked_phone == "137****2222"
    again = d.get_customer(WANG)
    assert (again.name, again.masked_phone, again.birthday) == ("王芳芳", "137****2222", date(1998, 11, 21))
    assert d.find_customer_by_phone("13700002222").id == WANG


def test_update_profile_twice_with_one_key_gives_the_same_answer(backend: Backend) -> None:
    first = backend.directory.update_profile(LINA, "email", "lina2@example.com", "t:2:email")
    second = backend.directory.update_profile(LINA, "email", "lina2@example.com", "t:2:email")
    assert first == second


@pytest.mark.parametrize(
    "field, value, words",
    [("email", "not-an-email", "邮箱"), ("phone", "1234", "手机号"), ("birthday", "明天", "出生日期"),
     ("address", "家里", "地址"), ("name", "A1", "姓名"), ("password", "x", "可以修改")],
)
def test_bad_profile_values_are_refused_and_change_nothing(backend: Backend, field: str, value: str, words: str) -> None:
    before = backend.directory.get_customer(ZHANG)
    with pytest.raises(errors.InvalidInput) as info:
        backend.directory.update_profile(ZHANG, field, value, f"t:3:{field}")
    assert words in info.value.message_zh
    assert backend.directory.get_customer(ZHANG) == before


def test_a_phone_another_customer_has_is_refused(backend: Backend) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        backend.directory.update_profile(WANG, "phone", "13800138000", "t:4:phone")
    assert info.value.message_zh == MSG_PHONE_TAKEN
    assert backend.directory.get_customer(WANG).masked_phone == "137****1111"


def test_update_profile_of_unknown_customer(backend: Backend) -> None:
    with pytest.raises(errors.NotFound):
        backend.directory.update_profile(987654, "email", "x@example.com", "t:5:email")


def test_create_case_and_list_it(backend: Backend) -> None:
    case = complaint(contact_phone="13511112222")
    stored = backend.directory.create_case(ZHANG, case, "t:6:complaint", sender_id="wx-openid-1",
                                           contact_phone="13511112222")
    assert stored.ticket_number == case.ticket_number
    listed = {c.ticket_number: c for c in backend.directory.cases_for_customer(ZHANG)}
    got = listed[case.ticket_number]
    for name in ("category", "category_label", "description", "severity", "status", "status_label", "channel",
                 "order_number", "masked_contact_phone", "created_at", "sla_due_at", "resolved_at"):
        assert getattr(got, name) == getattr(case, name), name
    assert got.masked_contact_phone == "135****2222"
    assert case.ticket_number not in {c.ticket_number for c in backend.directory.cases_for_customer(LINA)}


def test_create_case_twice_with_one_key_stores_one(backend: Backend) -> None:
    case = complaint()
    first = backend.directory.create_case(LINA, case, "t:7:complaint", sender_id="s")
    second = backend.directory.create_case(LINA, case, "t:7:complaint", sender_id="s")
    assert first.ticket_number == second.ticket_number == case.ticket_number
    assert backend.cases_with_ticket(case.ticket_number) == 1


def test_anonymous_case(backend: Backend) -> None:
    case = complaint(order_number=None, tier=None)
    stored = backend.directory.create_case(None, case, "t:8:complaint", sender_id="web-abc", contact_phone="13522223333")
    assert stored.ticket_number == case.ticket_number
    assert backend.cases_with_ticket(case.ticket_number) == 1


def test_newest_case_first_and_open_only(backend: Backend) -> None:
    older = complaint()
    newer = replace(complaint(), created_at=older.created_at + __import__("datetime").timedelta(minutes=5))
    backend.directory.create_case(WANG, older, "t:9:a", sender_id="s")
    backend.directory.create_case(WANG, newer, "t:9:b", sender_id="s")
    mine = [c.ticket_number for c in backend.directory.cases_for_customer(WANG)]
    assert mine.index(newer.ticket_number) < mine.index(older.ticket_number)
    backend.directory.update_case_status(older.ticket_number, "resolved", "t:9:close")
    open_ones = [c.ticket_number for c in backend.directory.cases_for_customer(WANG, open_only=True)]
    assert newer.ticket_number in open_ones and older.ticket_number not in open_ones


def test_update_case_status(backend: Backend) -> None:
    case = complaint()
    backend.directory.create_case(ZHANG, case, "t:10:complaint", sender_id="s")
    pending = backend.directory.update_case_status(case.ticket_number, "pending", "t:10:pending")
    assert (pending.status, pending.status_label, pending.resolved_at) == ("pending", "处理中", None)
    resolved = backend.directory.update_case_status(case.ticket_number, "resolved", "t:10:resolved")
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    listed = {c.ticket_number: c for c in backend.directory.cases_for_customer(ZHANG)}[case.ticket_number]
    assert listed.status == "resolved" and listed.resolved_at is not None
    reopened = backend.directory.update_case_status(case.ticket_number, "open", "t:10:reopen")
    assert reopened.status == "open" and reopened.resolved_at is None


def test_update_case_status_refusals(backend: Backend) -> None:
    case = complaint()
    backend.directory.create_case(ZHANG, case, "t:11:complaint", sender_id="s")
    with pytest.raises(errors.InvalidInput) as info:
        backend.directory.update_case_status("TS202001010001", "resolved", "t:11:a")
    assert "投诉单号" in info.value.message_zh
    with pytest.raises(errors.InvalidInput):
        backend.directory.update_case_status(case.ticket_number, "fixed", "t:11:b")
    with pytest.raises(errors.InvalidInput):
        backend.directory.update_case_status("not-a-ticket", "resolved", "t:11:c")
    listed = {c.ticket_number: c for c in backend.directory.cases_for_customer(ZHANG)}[case.ticket_number]
    assert listed.status == "open"


def test_create_case_refuses_what_is_not_a_complaint(backend: Backend) -> None:
    with pytest.raises(errors.InvalidInput):
        backend.directory.create_case(ZHANG, {"ticket_number": "TS202601010001"}, "t:12:c", sender_id="s")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInput):
        backend.directory.create_case(ZHANG, replace(complaint(), category="bad"), "t:12:d", sender_id="s")
    with pytest.raises(errors.InvalidInput):
        backend.directory.create_case(ZHANG, complaint(), "t:12:e", sender_id="s", contact_phone="12")


def test_add_note_once_per_key_and_masked(backend: Backend) -> None:
    before = len(backend.notes_of(LINA))
    backend.directory.add_note(LINA, "faq", "问运费，留了电话13912345678", "t:13:note", channel="wechat", sender_id="s")
    backend.directory.add_note(LINA, "faq", "问运费，留了电话13912345678", "t:13:note", channel="wechat", sender_id="s")
    notes = backend.notes_of(LINA)
    assert len(notes) == before + 1
    assert "139****5678" in notes[-1] and "13912345678" not in notes[-1]


def test_add_note_refusals(backend: Backend) -> None:
    with pytest.raises(errors.NotFound):
        backend.directory.add_note(987654, "faq", "问运费", "t:14:a", channel="wechat", sender_id="s")
    with pytest.raises(errors.InvalidInput):
        backend.directory.add_note(LINA, "faq", "   ", "t:14:b", channel="wechat", sender_id="s")
    with pytest.raises(errors.InvalidInput):
        backend.directory.add_note(LINA, "faq", "问运费", "", channel="wechat", sender_id="s")
