"""Zoho specifics against the fake Zoho: OAuth tokens, retries, timeouts, Zoho's errors."""
from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from crm_adapter import errors
from crm_adapter.backends.http import RetryPolicy
from crm_adapter.backends.zoho import ZohoDirectory
from crm_adapter.directory import directory_from_env
from tests.fakes import zoho_server
from tests.fakes.zoho_server import FakeZoho

from .remote_fixtures import FAST, complaint, fake_zoho, zoho_directory  # noqa: F401 (fixtures)

ZHANG, LINA, WANG = 1, 2, 3


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_one_token_serves_many_calls(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    for _ in range(3):
        zoho.get_customer(ZHANG)
    assert fake_zoho.refresh_count == 1 and zoho.tokens.refreshes == 1
    assert fake_zoho.rejected_tokens == 0


def test_token_renewed_before_it_expires(fake_zoho: FakeZoho) -> None:
    clock = Clock()
    zoho = zoho_directory(fake_zoho, clock=clock)
    zoho.get_customer(ZHANG)
    clock.now += fake_zoho.token_ttl - 30  # within the renewal margin
    zoho.get_customer(ZHANG)
    assert fake_zoho.refresh_count == 2
    assert fake_zoho.rejected_tokens == 0  # renewed before Zoho had to refuse it


def test_token_refused_by_zoho_is_renewed_once(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    zoho.get_customer(ZHANG)
    fake_zoho.expire_tokens()  # revoked or expired early, unknown to us
    assert zoho.get_customer(ZHANG).name == "张伟"
    assert fake_zoho.rejected_tokens == 1 and fake_zoho.refresh_count == 2


def test_token_refused_twice_is_unavailable_not_a_loop(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    fake_zoho.token_ttl = -1  # every new token is already expired
    with pytest.raises(errors.CRMUnavailable):
        zoho.get_customer(ZHANG)
    assert fake_zoho.rejected_tokens == 2  # the first token, then the renewed one; no more


def test_refused_refresh_token_is_unavailable_and_secrets_stay_out_of_logs(
    fake_zoho: FakeZoho, caplog: pytest.LogCaptureFixture
) -> None:
    fake_zoho.refuse_refresh = True
    zoho = zoho_directory(fake_zoho)
    with caplog.at_level(logging.DEBUG, logger="crm_adapter"), pytest.raises(errors.CRMUnavailable) as info:
        zoho.get_customer(ZHANG)
    text = caplog.text + str(info.value) + repr(zoho) + repr(zoho.settings)
    assert "invalid_code" in caplog.text
    for secret in (zoho_server.CLIENT_SECRET, zoho_server.REFRESH_TOKEN):
        assert secret not in text


def test_access_token_never_logged(fake_zoho: FakeZoho, caplog: pytest.LogCaptureFixture) -> None:
    zoho = zoho_directory(fake_zoho)
    with caplog.at_level(logging.DEBUG, logger="crm_adapter"):
        zoho.get_customer(ZHANG)
        fake_zoho.expire_tokens()
        zoho.update_profile(ZHANG, "phone", "13800138001", "z:1:phone")
    assert "access-" not in caplog.text
    assert "13800138001" not in caplog.text


def test_token_file_is_private_and_shared(fake_zoho: FakeZoho, tmp_path: Path) -> None:
    path = tmp_path / "zoho" / "token.json"
    zoho_directory(fake_zoho, token_file=path).get_customer(ZHANG)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    zoho_directory(fake_zoho, token_file=path).get_customer(LINA)  # another worker process
    assert fake_zoho.refresh_count == 1


def test_429_waits_as_long_as_retry_after_says(fake_zoho: FakeZoho) -> None:
    waits: list[float] = []
    zoho = zoho_directory(fake_zoho, sleep=lambda s: (waits.append(s), time.sleep(s)))
    zoho.get_customer(ZHANG)  # token first
    fake_zoho.fail_next = [429]
    fake_zoho.retry_after = 0.3
    assert zoho.get_customer(ZHANG).name == "张伟"
    assert waits and waits[0] >= 0.3


def test_server_errors_are_retried_then_unavailable(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    zoho.get_customer(ZHANG)
    fake_zoho.fail_next = [500, 503]
    assert zoho.get_customer(ZHANG).name == "张伟"  # third attempt succeeds
    before = fake_zoho.count("GET", "/crm/")
    fake_zoho.fail_next = [500] * 10
    with pytest.raises(errors.CRMUnavailable):
        zoho.get_customer(ZHANG)
    assert fake_zoho.count("GET", "/crm/") - before == FAST.max_attempts


def test_retry_after_beyond_the_budget_gives_up_at_once(fake_zoho: FakeZoho) -> None:
    waits: list[float] = []
    zoho = zoho_directory(fake_zoho, sleep=waits.append)
    zoho.get_customer(ZHANG)
    fake_zoho.fail_next = [429]
    fake_zoho.retry_after = 60
    with pytest.raises(errors.CRMUnavailable):
        zoho.get_customer(ZHANG)
    assert waits == []


def test_slow_server_times_out_as_unavailable(fake_zoho: FakeZoho) -> None:
    policy = RetryPolicy(connect_timeout=1, read_timeout=0.3, max_attempts=2, base_delay=0.01, total_budget=5)
    zoho = zoho_directory(fake_zoho, retry=policy)
    zoho.get_customer(ZHANG)
    fake_zoho.delay = 1.0
    with pytest.raises(errors.CRMUnavailable) as info:
        zoho.get_customer(ZHANG)
    assert "timeout" in str(info.value)


def test_nobody_listening_is_unavailable(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    fake_zoho.stop()
    with pytest.raises(errors.CRMUnavailable):
        zoho.get_customer(ZHANG)


def test_invalid_data_is_a_chinese_refusal(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    fake_zoho.invalid_fields = {"Mobile"}
    with pytest.raises(errors.InvalidInput) as info:
        zoho.update_profile(WANG, "phone", "13700003333", "z:2:phone")
    assert "手机号" in info.value.message_zh
    assert zoho.get_customer(WANG).masked_phone == "137****1111"


def test_duplicate_mobile_in_zoho_is_phone_taken(fake_zoho: FakeZoho) -> None:
    fake_zoho.unique_fields = {"Mobile"}
    fake_zoho.add_contact(Last_Name="未关联", Mobile="13655556666")  # unlinked: our own check cannot see it
    with pytest.raises(errors.InvalidInput) as info:
        zoho_directory(fake_zoho).update_profile(WANG, "phone", "13655556666", "z:3:phone")
    assert "无法绑定" in info.value.message_zh


def test_create_whose_answer_was_lost_is_not_repeated(fake_zoho: FakeZoho) -> None:
    policy = RetryPolicy(connect_timeout=1, read_timeout=0.5, max_attempts=3, base_delay=0.01, total_budget=10)
    zoho = zoho_directory(fake_zoho, retry=policy)
    zoho.get_customer(ZHANG)
    case = complaint()
    fake_zoho.delay_after_write = 1.0  # stored, then the answer comes too late
    stored = zoho.create_case(ZHANG, case, "z:4:complaint", sender_id="s")
    fake_zoho.delay_after_write = 0
    assert stored.ticket_number == case.ticket_number
    assert [r["Kefu_Ticket"] for r in fake_zoho.records("Cases")].count(case.ticket_number) == 1
    assert fake_zoho.count("POST", "/crm/v2/Cases") == 1


def test_search_lag_with_a_unique_key_field_still_stores_one(fake_zoho: FakeZoho) -> None:
    """Two workers create the same case while Zoho's search cannot see it yet:
    the unique Kefu_Key makes Zoho refuse the second, which then searches until it sees the first."""
    import threading

    policy = RetryPolicy(connect_timeout=1, read_timeout=2, max_attempts=8, base_delay=0.1, max_delay=0.3,
                         total_budget=10)
    fake_zoho.unique_fields = {"Kefu_Key"}
    fake_zoho.search_lag = 0.5
    fake_zoho.delay = 0.05  # both searches happen before either post
    case = complaint()
    workers = [zoho_directory(fake_zoho, retry=policy) for _ in range(2)]
    results: list = []
    threads = [threading.Thread(target=lambda w=w: results.append(w.create_case(ZHANG, case, "z:8:c", sender_id="s")))
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.ticket_number for r in results] == [case.ticket_number] * 2
    assert fake_zoho.count("POST", "/crm/v2/Cases") >= 2  # the race did happen
    assert [r["Kefu_Ticket"] for r in fake_zoho.records("Cases")].count(case.ticket_number) == 1


def test_case_fields_in_zoho(fake_zoho: FakeZoho) -> None:
    case = complaint(category="quality", description="耳机有电流声，怀疑漏电，孩子被电了一下受伤了")
    zoho_directory(fake_zoho).create_case(ZHANG, case, "z:5:complaint", sender_id="s", contact_phone="13511112222")
    record = next(r for r in fake_zoho.records("Cases") if r["Kefu_Ticket"] == case.ticket_number)
    contact = next(r for r in fake_zoho.records("Contacts") if r.get("Kefu_Customer_Id") == ZHANG)
    assert record["Contact_Name"] == {"id": contact["id"]}
    assert (record["Status"], record["Priority"], record["Phone"]) == ("New", "High", "13511112222")
    assert record["Subject"].startswith(f"[{case.ticket_number}]") and "商品质量" in record["Subject"]
    assert len(record["Kefu_Key"]) == 32 and "z:5" not in record["Kefu_Key"]


def test_a_status_changed_by_staff_in_zoho_wins(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    case = complaint()
    zoho.create_case(LINA, case, "z:6:complaint", sender_id="s")
    with fake_zoho.lock:
        record = next(r for r in fake_zoho.modules["Cases"].values() if r["Kefu_Ticket"] == case.ticket_number)
        record["Status"] = "Closed"  # an agent closed it in Zoho's own UI
    assert zoho.cases_for_customer(LINA)[0].status == "resolved"


def test_paging_reads_every_page(fake_zoho: FakeZoho) -> None:
    zoho = zoho_directory(fake_zoho)
    tickets = {zoho.create_case(WANG, complaint(), f"z:7:{i}", sender_id="s").ticket_number for i in range(5)}
    fake_zoho.per_page_cap = 2
    assert {c.ticket_number for c in zoho.cases_for_customer(WANG)} == tickets
    assert fake_zoho.count("GET", "/crm/v2/Cases/search") >= 3


def test_unlinked_contacts_are_not_customers(fake_zoho: FakeZoho) -> None:
    assert zoho_directory(fake_zoho).find_customer_by_phone("13600000000") is None


def test_search_criteria_escape_zoho_specials() -> None:
    from crm_adapter.backends.zoho import _criteria

    assert _criteria("Kefu_Ticket", "TS202601010001") == "(Kefu_Ticket:equals:TS202601010001)"
    assert _criteria("Last_Name", "a(b),c") == r"(Last_Name:equals:a\(b\)\,c)"


def test_from_env(fake_zoho: FakeZoho, tmp_path: Path) -> None:
    env = {
        "KEFU_CRM_DIRECTORY": "zoho",
        "KEFU_ZOHO_ACCOUNTS_URL": fake_zoho.url,
        "KEFU_ZOHO_API_URL": fake_zoho.url,
        "KEFU_ZOHO_CLIENT_ID": zoho_server.CLIENT_ID,
        "KEFU_ZOHO_CLIENT_SECRET": zoho_server.CLIENT_SECRET,
        "KEFU_ZOHO_REFRESH_TOKEN": zoho_server.REFRESH_TOKEN,
        "KEFU_CRM_READ_TIMEOUT": "2.5",
    }
    zoho = directory_from_env(env=env)
    assert isinstance(zoho, ZohoDirectory)
    assert zoho.http.policy.read_timeout == 2.5
    assert zoho.get_customer(ZHANG).name == "张伟"
    assert zoho_server.CLIENT_SECRET not in repr(zoho.settings)
    for missing in ("KEFU_ZOHO_CLIENT_ID", "KEFU_ZOHO_CLIENT_SECRET", "KEFU_ZOHO_REFRESH_TOKEN"):
        with pytest.raises(ValueError) as info:
            directory_from_env(env={k: v for k, v in env.items() if k != missing})
        assert missing in str(info.value)
    with pytest.raises(ValueError):
        directory_from_env(env={**env, "KEFU_CRM_READ_TIMEOUT": "soon"})
    with pytest.raises(ValueError):
        directory_from_env(env={"KEFU_CRM_DIRECTORY": "salesforce"})
