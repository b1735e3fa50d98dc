"""Consent per channel and purpose with history, quiet hours, may_contact."""
from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from crm_adapter import CRM, consent, errors, views
from crm_adapter.models import Consent, ContactPreference, Customer, ProcessedOperation

ZHANG, LINA, WANG = 1, 2, 3
CST = views.CHINA_TZ


def _at(hour: int, minute: int = 0, tz: timezone | ZoneInfo = CST) -> datetime:
    return datetime(2026, 1, 15, hour, minute, tzinfo=tz)


# -- consents --------------------------------------------------------------


def test_defaults_without_any_decision(crm: CRM) -> None:
    marketing = crm.consent_status(WANG, "app", "marketing")
    service = crm.consent_status(WANG, "app", "service")
    assert (marketing.granted, marketing.decided, marketing.source) == (False, False, None)
    assert (service.granted, service.decided) == (True, False)


def test_seeded_decisions_show_who_when_and_where(crm: CRM) -> None:
    wechat = crm.consent_status(ZHANG, "wechat", "marketing")
    assert (wechat.granted, wechat.decided, wechat.source, wechat.recorded_by) == (True, True, "demo", "customer")
    assert wechat.decided_at.utcoffset() == CST.utcoffset(None)
    assert crm.consent_status(ZHANG, "sms", "marketing").granted is False  # never agreed to SMS


def test_all_channels_decision_then_one_channel_again(crm: CRM, clock, key) -> None:
    crm.set_consent(LINA, "wechat", "marketing", True, "chat", key("c"))
    clock.advance(minutes=1)
    crm.set_marketing_consent(LINA, "all", "marketing", False, "chat", key("unsubscribe"))
    for channel in ("wechat", "sms", "email", "web", "app"):
        status = crm.consent_status(LINA, channel, "marketing")
        assert (status.granted, status.decided_on_channel) == (False, "all"), channel
    clock.advance(minutes=1)
    crm.set_consent(LINA, "sms", "marketing", True, "web_form", key("c"))
    assert crm.consent_status(LINA, "sms", "marketing").granted is True
    assert crm.consent_status(LINA, "wechat", "marketing").granted is False
    assert crm.consent_status(LINA, "sms", "service").decided is False  # purposes are separate


def test_unsubscribe_keeps_working_and_history_keeps_every_decision(crm: CRM, clock, key) -> None:
    before = len(crm.consent_history(ZHANG))
    assert crm.set_marketing_consent(ZHANG, "all", "marketing", False, "chat", key("unsub")) is None
    clock.advance(hours=1)
    view = crm.set_consent(ZHANG, "email", "marketing", True, "desk", key("c"), recorded_by="agent:7")
    assert (view.channel, view.granted, view.recorded_by, view.source) == ("email", True, "agent:7", "desk")
    history = crm.consent_history(ZHANG)
    assert len(history) == before + 2
    assert [(h.decided_on_channel, h.granted, h.recorded_by) for h in history[-2:]] == [
        ("all", False, "customer"), ("email", True, "agent:7"),
    ]
    assert history[-2].decided_at < history[-1].decided_at
    assert crm.consent_status(ZHANG, "wechat", "marketing").granted is False


def test_consent_write_is_idempotent(crm: CRM, key, count) -> None:
    k = key("consent")
    first = crm.set_consent(WANG, "app", "marketing", True, "app_settings", k)
    assert crm.set_consent(WANG, "app", "marketing", True, "app_settings", k) == first
    assert count(Consent, Consent.customer_id == WANG, Consent.channel == "app") == 1


@pytest.mark.parametrize(
    "channel, purpose, granted, recorded_by",
    [
        ("telegram", "marketing", True, "customer"),
        ("", "marketing", True, "customer"),
        ("sms", "advertising", True, "customer"),
        ("sms", "marketing", "yes", "customer"),
        ("sms", "marketing", 1, "customer"),
        ("sms", "marketing", True, ""),
    ],
)
def test_bad_consent_input_is_refused_and_writes_nothing(
    crm: CRM, key, count, channel, purpose, granted, recorded_by
) -> None:
    rows, operations = count(Consent), count(ProcessedOperation)
    with pytest.raises(errors.InvalidInput) as caught:
        crm.set_consent(WANG, channel, purpose, granted, "chat", key("c"), recorded_by=recorded_by)
    assert caught.value.message_zh
    assert (count(Consent), count(ProcessedOperation)) == (rows, operations)


def test_status_needs_a_real_channel_and_a_customer(crm: CRM) -> None:
    with pytest.raises(errors.InvalidInput, match="联系渠道"):
        crm.consent_status(ZHANG, "all", "marketing")
    with pytest.raises(errors.NotFound):
        crm.consent_status(99999, "sms", "marketing")
    with pytest.raises(errors.NotFound):
        crm.set_consent(99999, "sms", "marketing", True, "chat", "k:x:c")


# -- quiet hours and may_contact --------------------------------------------


@pytest.mark.parametrize(
    "local, start, end, quiet",
    [
        (time(23, 30), time(22), time(8), True),
        (time(0, 0), time(22), time(8), True),
        (time(7, 59), time(22), time(8), True),
        (time(8, 0), time(22), time(8), False),
        (time(21, 59), time(22), time(8), False),
        (time(22, 0), time(22), time(8), True),
        (time(13, 30), time(13), time(14), True),
        (time(14, 0), time(13), time(14), False),
        (time(3, 0), time(9), time(9), False),  # start == end: no quiet hours
    ],
)
def test_quiet_hours_rule(local: time, start: time, end: time, quiet: bool) -> None:
    assert consent.in_quiet_hours(local, start, end) is quiet


def test_default_quiet_hours(crm: CRM) -> None:
    hours = crm.quiet_hours(ZHANG)
    assert (hours.start, hours.end, hours.timezone, hours.is_default) == (
        time(22), time(8), "Asia/Shanghai", True,
    )


@pytest.mark.parametrize(
    "at, allowed",
    [
        (_at(12), True),
        (_at(21, 59), True),
        (_at(22), False),
        (_at(23, 30), False),
        (_at(7, 59), False),
        (_at(8), True),
        (datetime(2026, 1, 15, 14, 30), False),  # naive is UTC: 22:30 in Shanghai
        (datetime(2026, 1, 15, 4, 0), True),  # 12:00 in Shanghai
    ],
)
def test_may_contact_honours_default_quiet_hours(crm: CRM, at: datetime, allowed: bool) -> None:
    assert crm.may_contact(ZHANG, "wechat", "marketing", at) is allowed  # he agreed to WeChat


def test_may_contact_needs_consent(crm: CRM, key) -> None:
    assert crm.may_contact(ZHANG, "sms", "marketing", _at(12)) is False  # never agreed
    assert crm.may_contact(ZHANG, "sms", "service", _at(12)) is True  # contract, no opt-in needed
    assert crm.may_contact(ZHANG, "sms", "service", _at(23)) is False  # but not at night
    crm.set_consent(ZHANG, "sms", "service", False, "chat", key("c"))
    assert crm.may_contact(ZHANG, "sms", "service", _at(12)) is False  # a refusal is honoured
    crm.set_marketing_consent(ZHANG, "all", "marketing", False, "chat", key("unsub"))
    assert crm.may_contact(ZHANG, "wechat", "marketing", _at(12)) is False


def test_own_quiet_hours_and_time_zone(crm: CRM, key, clock) -> None:
    hours = crm.set_quiet_hours(ZHANG, "１３：００", "14:00", key("quiet"))
    assert (hours.start, hours.end, hours.is_default) == (time(13), time(14), False)
    assert crm.may_contact(ZHANG, "wechat", "marketing", _at(13, 30)) is False
    assert crm.may_contact(ZHANG, "wechat", "marketing", _at(23, 30)) is True  # the night is his choice now

    berlin = ZoneInfo("Europe/Berlin")
    hours = crm.set_quiet_hours(ZHANG, "22点", time(7), key("quiet"), timezone_name="Europe/Berlin")
    assert (hours.start, hours.end, hours.timezone) == (time(22), time(7), "Europe/Berlin")
    assert crm.get_customer(ZHANG).timezone == "Europe/Berlin"
    assert crm.may_contact(ZHANG, "wechat", "marketing", _at(23, tz=berlin)) is False
    assert crm.may_contact(ZHANG, "wechat", "marketing", _at(12, tz=berlin)) is True  # 19:00 in Shanghai

    crm.set_quiet_hours(ZHANG, "0:00", "0:00", key("quiet"))
    assert crm.may_contact(ZHANG, "wechat", "marketing", _at(3, tz=berlin)) is True


@pytest.mark.parametrize(
    "start, end, zone",
    [("25:00", "08:00", None), ("abc", "08:00", None), ("22:00", "", None), ("22:00", "08:00", "Mars/Base"),
     ("22:00", "08:00", "")],
)
def test_bad_quiet_hours_are_refused_and_change_nothing(crm: CRM, key, count, start, end, zone) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        crm.set_quiet_hours(ZHANG, start, end, key("quiet"), timezone_name=zone)
    assert caught.value.message_zh
    assert count(ContactPreference) == 0
    assert count(Customer, Customer.id == ZHANG, Customer.timezone == "Asia/Shanghai") == 1


def test_quiet_hours_write_is_idempotent(crm: CRM, key, count) -> None:
    k = key("quiet")
    first = crm.set_quiet_hours(LINA, "21:00", "09:00", k)
    assert crm.set_quiet_hours(LINA, "23:00", "06:00", k) == first  # a retry, not a new wish
    assert crm.quiet_hours(LINA).start == time(21)
    assert count(ContactPreference) == 1


def test_may_contact_input_and_unknown_customers(crm: CRM) -> None:
    assert crm.may_contact(99999, "sms", "service", _at(12)) is False
    with pytest.raises(errors.InvalidInput):
        crm.may_contact(ZHANG, "pigeon", "service", _at(12))
    with pytest.raises(errors.InvalidInput):
        crm.may_contact(ZHANG, "sms", "spam", _at(12))
    with pytest.raises(errors.InvalidInput):
        crm.may_contact(ZHANG, "sms", "service", "tonight")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInput):
        crm.may_contact("abc", "sms", "service", _at(12))  # type: ignore[arg-type]
