"""The system clock jumps (NTP correction, a VM resumed, a wrong manual setting):
care messages are neither sent twice nor lost.

The send log's unique key per campaign and occasion, and retry times stored
as absolute moments, are what make this hold; these tests move the CRM's
clock backward and forward around a campaign run and a failed send.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.scheduler.campaigns import Campaign
from bot.scheduler.runner import Deliverer, run_campaign
from bot.scheduler.senders import RasaPush, Senders, SmsGateway
from crm_adapter import CRM
from tests.crm_adapter import care_fixtures as make
from tests.crm_adapter.conftest import Clock
from tests.fakes.sms_gateway import FakeSmsGateway

DAY = date(2026, 5, 31)
NO_RASA = RasaPush("http://127.0.0.1:9", "")


@pytest.fixture
def noon(clock: Clock) -> Clock:
    clock.advance(hours=2)  # 12:00 China time: well outside the care quiet hours either way
    return clock


def _birthday_by_sms(crm: CRM) -> int:
    cid = make.customer(crm, name="李雷", birthday=date(1990, 5, 31))
    crm.care.set_channel_preference(cid, "sms")
    return cid


def test_clock_going_back_after_a_run_sends_nothing_twice(crm: CRM, campaigns: dict[str, Campaign],
                                                          sms: FakeSmsGateway, noon: Clock) -> None:
    _birthday_by_sms(crm)
    deliver = Deliverer(crm, campaigns, Senders(NO_RASA, sms=SmsGateway(sms.url, sms.token)))
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 1
    assert deliver.deliver_due() == {"delivered": 1}
    noon.advance(minutes=-90)  # back to before the run: the cron fires "again"
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 0
    assert deliver.deliver_due() == {}
    noon.advance(hours=3)  # and forward again past the first run
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 0
    assert deliver.deliver_due() == {}
    assert len(sms.accepted) == 1


def test_a_failed_send_survives_jumps_both_ways_and_goes_out_once(crm: CRM, campaigns: dict[str, Campaign],
                                                                   sms: FakeSmsGateway, noon: Clock) -> None:
    _birthday_by_sms(crm)
    deliver = Deliverer(crm, campaigns, Senders(NO_RASA, sms=SmsGateway(sms.url, sms.token)))
    run_campaign(crm, campaigns["birthday"], DAY)
    sms.fail_next = [500]
    assert deliver.deliver_due() == {"failed": 1}
    [row] = [crm.care.get(1)]
    retry_at = row.next_attempt_at
    noon.advance(minutes=-90)  # back: the retry is further away, not lost
    assert deliver.deliver_due() == {}
    assert crm.care.get(1).status == "failed" and crm.care.get(1).next_attempt_at == retry_at
    noon.advance(hours=5)  # forward far past the retry time: sent once, not once per missed interval
    assert deliver.deliver_due() == {"delivered": 1}
    assert deliver.deliver_due() == {}
    assert len(sms.accepted) == 1 and "生日快乐" in sms.accepted[0]["text"]


def test_a_day_skipped_by_a_forward_jump_does_not_repeat_yesterdays_greeting(
        crm: CRM, campaigns: dict[str, Campaign], sms: FakeSmsGateway, noon: Clock) -> None:
    _birthday_by_sms(crm)
    deliver = Deliverer(crm, campaigns, Senders(NO_RASA, sms=SmsGateway(sms.url, sms.token)))
    run_campaign(crm, campaigns["birthday"], DAY)
    deliver.deliver_due()
    noon.advance(days=1)
    assert run_campaign(crm, campaigns["birthday"], DAY + timedelta(days=1)).queued == 0
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 0  # the late run of the skipped day
    assert deliver.deliver_due() == {}
    assert len(sms.accepted) == 1
