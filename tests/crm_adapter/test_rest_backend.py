"""The generic REST directory: mapping files, Idempotency-Key, auth, the CRM's refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from crm_adapter import errors
from crm_adapter.backends.http import RetryPolicy
from crm_adapter.backends.rest import FieldMapping, RestDirectory, RestSettings, get_path, set_path
from crm_adapter.directory import directory_from_env
from tests.fakes import rest_crm_server
from tests.fakes.rest_crm_server import FakeRestCrm

from .remote_fixtures import FAST, complaint, fake_rest, rest_directory  # noqa: F401 (fixtures)

ZHANG, LINA, WANG = 1, 2, 3


def _env(fake: FakeRestCrm, mapping_file: Path) -> dict[str, str]:
    return {
        "KEFU_CRM_DIRECTORY": "rest",
        "KEFU_REST_CRM_URL": fake.url,
        "KEFU_REST_CRM_TOKEN": rest_crm_server.TOKEN,
        "KEFU_REST_CRM_MAPPING": str(mapping_file),
    }


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_configured_from_env_with_a_mapping_file(fake_rest: FakeRestCrm, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"mapping{suffix}"
    text = (yaml.safe_dump(rest_crm_server.MAPPING, allow_unicode=True) if suffix == ".yaml"
            else json.dumps(rest_crm_server.MAPPING))
    path.write_text(text, encoding="utf-8")
    rest = directory_from_env(env=_env(fake_rest, path))
    assert isinstance(rest, RestDirectory)
    zhang = rest.get_customer(ZHANG)
    assert (zhang.name, zhang.tier, zhang.masked_phone) == ("张伟", "core", "138****8000")  # "A" -> core


def test_without_a_mapping_the_names_are_ours(tmp_path: Path) -> None:
    layout = {
        "envelope": "", "paths": {"customers": "/api/customers", "cases": "/api/cases", "notes": "/api/notes"},
        "customer_id": "id", "customer_phone": "phone", "customer_email": "email",
        "case_ticket": "ticket_number", "case_customer": "customer_id",
    }
    fake = FakeRestCrm(layout).start()
    try:
        fake.add_customer({"id": 5, "name": "赵敏", "phone": "13300001234", "tier": "potential"})
        mapping = FieldMapping.from_dict({"paths": layout["paths"]})
        rest = RestDirectory(RestSettings(fake.url, rest_crm_server.TOKEN, mapping), retry=FAST)
        assert rest.find_customer_by_phone("13300001234").name == "赵敏"
        case = complaint(order_number=None)
        rest.create_case(5, case, "r:0:c", sender_id="s")
        assert fake.cases[case.ticket_number]["category"] == case.category
        assert [c.ticket_number for c in rest.cases_for_customer(5)] == [case.ticket_number]
    finally:
        fake.stop()


def test_records_are_written_in_the_crms_own_shape(fake_rest: FakeRestCrm) -> None:
    rest = rest_directory(fake_rest)
    case = complaint(contact_phone="13511112222")
    rest.create_case(ZHANG, case, "r:1:c", sender_id="wx-1", contact_phone="13511112222")
    stored = fake_rest.cases[case.ticket_number]
    assert stored["account_no"] == ZHANG and stored["state"] == "NEW"
    assert stored["source"] == {"channel": "wechat", "sender": "wx-1"}
    assert stored["callback"] == {"mobile": "13511112222"}
    rest.update_case_status(case.ticket_number, "resolved", "r:1:s")
    assert fake_rest.cases[case.ticket_number]["state"] == "DONE"
    rest.update_profile(LINA, "address", "浙江省杭州市滨江区江南大道100号", "r:1:a")
    assert fake_rest.customers["2"]["address"] == {"city": "杭州", "detail": "浙江省杭州市滨江区江南大道100号"}


def test_every_post_carries_an_idempotency_key(fake_rest: FakeRestCrm) -> None:
    rest = rest_directory(fake_rest)
    rest.create_case(ZHANG, complaint(), "r:2:c", sender_id="s")
    rest.add_note(ZHANG, "faq", "问运费", "r:2:n", channel="wechat", sender_id="s")
    assert fake_rest.missing_key_posts == 0
    assert {key for _, key in fake_rest.seen_keys} and all(len(k) == 32 for _, k in fake_rest.seen_keys)


def test_create_whose_answer_was_lost_is_not_repeated(fake_rest: FakeRestCrm) -> None:
    policy = RetryPolicy(connect_timeout=1, read_timeout=0.5, max_attempts=3, base_delay=0.01, total_budget=10)
    rest = rest_directory(fake_rest, retry=policy)
    case = complaint()
    fake_rest.delay_after_write, fake_rest.slow_writes = 1.0, 1
    assert rest.create_case(ZHANG, case, "r:3:c", sender_id="s").ticket_number == case.ticket_number
    assert fake_rest.count("POST", "/api/v2/service-tickets") >= 2  # it was sent again ...
    assert list(fake_rest.cases).count(case.ticket_number) == 1  # ... and stored once


def test_wrong_token_is_unavailable(fake_rest: FakeRestCrm) -> None:
    settings = RestSettings(fake_rest.url, "wrong", FieldMapping.from_dict(rest_crm_server.MAPPING))
    with pytest.raises(errors.CRMUnavailable) as info:
        RestDirectory(settings, retry=FAST).get_customer(ZHANG)
    assert "401" in str(info.value) and "wrong" not in str(info.value)


def test_crm_refusal_names_the_field_in_chinese(fake_rest: FakeRestCrm) -> None:
    rest = rest_directory(fake_rest)
    fake_rest.invalid_fields = {"profile.email"}  # the CRM is stricter than we are
    with pytest.raises(errors.InvalidInput) as info:
        rest.update_profile(WANG, "email", "wang@example.com", "r:4:e")
    assert "邮箱" in info.value.message_zh
    assert fake_rest.customers["3"]["profile"]["email"] is None
    fake_rest.invalid_fields = set()
    bad_email = "bad@example.c0m"  # passes nobody's check: ours refuses it before the CRM sees it
    before = fake_rest.count("PATCH", "/api/")
    with pytest.raises(errors.InvalidInput):
        rest.update_profile(WANG, "email", bad_email, "r:4:f")
    assert fake_rest.count("PATCH", "/api/") == before


def test_409_on_mobile_is_phone_taken(fake_rest: FakeRestCrm) -> None:
    fake_rest.add_customer({"account_no": "X-9", "profile": {"name": "外部", "mobile": "13655556666"}})
    with pytest.raises(errors.InvalidInput) as info:  # X-9 is no shop customer, so only the CRM knows
        rest_directory(fake_rest).update_profile(WANG, "phone", "13655556666", "r:5:p")
    assert "无法绑定" in info.value.message_zh


def test_server_errors_and_slowness(fake_rest: FakeRestCrm) -> None:
    rest = rest_directory(fake_rest)
    fake_rest.fail_next = [503, 429]
    assert rest.get_customer(ZHANG).name == "张伟"
    fake_rest.fail_next = [502] * 5
    with pytest.raises(errors.CRMUnavailable):
        rest.get_customer(ZHANG)
    fake_rest.fail_next = []
    fake_rest.delay = 1.0
    slow = rest_directory(fake_rest, retry=RetryPolicy(read_timeout=0.2, max_attempts=2, base_delay=0.01))
    with pytest.raises(errors.CRMUnavailable):
        slow.get_customer(ZHANG)


@pytest.mark.parametrize("bad", [
    {"customer": {"mobile_phone": "x"}},
    {"customer": {"phone": ""}},
    {"paths": {"orders": "/orders"}},
    {"colour": "blue"},
])
def test_mapping_mistakes_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        FieldMapping.from_dict(bad)


def test_missing_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        directory_from_env(env={"KEFU_CRM_DIRECTORY": "rest", "KEFU_REST_CRM_TOKEN": "t"})
    assert "KEFU_REST_CRM_URL" in str(info.value)
    with pytest.raises(ValueError) as info:
        directory_from_env(env={"KEFU_CRM_DIRECTORY": "rest", "KEFU_REST_CRM_URL": "http://127.0.0.1:1"})
    assert "KEFU_REST_CRM_TOKEN" in str(info.value)


def test_json_paths() -> None:
    record: dict = {}
    set_path(record, "a.b.c", 1)
    set_path(record, "a.d", 2)
    assert record == {"a": {"b": {"c": 1}, "d": 2}}
    assert get_path(record, "a.b.c") == 1 and get_path(record, "a.x.c") is None and get_path(record, "a.d.e") is None
