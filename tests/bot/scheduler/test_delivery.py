"""Delivery by e-mail (a real SMTP server, aiosmtpd) and SMS (the fake gateway), with retries."""
from __future__ import annotations

import socket
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Iterator

import pytest
from aiosmtpd.controller import Controller

from bot.scheduler.campaigns import Campaign
from bot.scheduler.runner import Deliverer, preview, run_campaign
from bot.scheduler.senders import RasaPush, Senders, SmsGateway, SmtpMail
from crm_adapter import CRM
from crm_adapter.care import CareSettings
from tests.crm_adapter import care_fixtures as make
from tests.crm_adapter.conftest import Clock
from tests.fakes.sms_gateway import FakeSmsGateway

DAY = date(2026, 5, 31)
NO_RASA = RasaPush("http://127.0.0.1:9", "")  # never reached in these tests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _birthday_customer(crm: CRM, channel: str, **kw: Any) -> int:
    cid = make.customer(crm, name="李雷", birthday=date(1990, 5, 31), **kw)
    crm.care.set_channel_preference(cid, channel)
    return cid


def test_email_reaches_a_real_smtp_server(crm: CRM, campaigns: dict[str, Campaign],
                                          smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    cid = _birthday_customer(crm, "email")
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 1
    mail = SmtpMail("127.0.0.1", port, "care@shop.example", starttls=False)
    outcome = Deliverer(crm, campaigns, Senders(NO_RASA, mail=mail)).deliver_due()
    assert outcome == {"delivered": 1}
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["Subject"] == "生日祝福"
    assert "李雷" in message.get_content() and "生日快乐" in message.get_content()
    row = crm.care.metrics("birthday")[0]
    assert (row["sent"], row["delivered"]) == (1, 1)
    send = crm.care.dead_letters() or None
    assert send is None
    (sent,) = [r for r in crm.care.counts().items()]
    assert sent == ("delivered", 1)
    assert "care-" in message["Message-ID"] and inbox.recipients[0][0].endswith("@example.com")
    # Nothing left to send: a second round sends nothing more.
    assert Deliverer(crm, campaigns, Senders(NO_RASA, mail=mail)).deliver_due() == {}
    assert len(inbox.messages) == 1 and cid


def test_smtp_down_is_retried_with_back_off(crm: CRM, campaigns: dict[str, Campaign], clock: Clock) -> None:
    _birthday_customer(crm, "email")
    run_campaign(crm, campaigns["birthday"], DAY)
    mail = SmtpMail("127.0.0.1", _free_port(), "care@shop.example", starttls=False, timeout_s=2)
    assert Deliverer(crm, campaigns, Senders(NO_RASA, mail=mail)).deliver_due() == {"failed": 1}
    [row] = [crm.care.get(i) for i in range(1, 2)]
    assert row.status == "failed" and row.attempts == 1 and "SendError" in row.last_error
    assert row.next_attempt_at > clock.now


def test_sms_through_the_gateway_with_retries_ending_dead(crm: CRM, campaigns: dict[str, Campaign],
                                                          sms: FakeSmsGateway, clock: Clock) -> None:
    crm.care.settings = CareSettings(max_attempts=3)
    cid = _birthday_customer(crm, "sms")
    other = _birthday_customer(crm, "sms")
    run_campaign(crm, campaigns["birthday"], DAY)
    gateway = SmsGateway(sms.url, sms.token)
    deliver = Deliverer(crm, campaigns, Senders(NO_RASA, sms=gateway))
    sms.fail_next = [500] * 6
    assert deliver.deliver_due() == {"failed": 2}
    clock.advance(hours=1)
    assert deliver.deliver_due() == {"failed": 2}
    clock.advance(hours=1)
    assert deliver.deliver_due() == {"dead": 2}
    assert sorted(r.customer_id for r in crm.care.dead_letters()) == [cid, other]
    assert sms.accepted == []
    # A manager requeues one; the gateway is back.
    dead = crm.care.dead_letters()[0]
    assert crm.care.requeue(dead.id)
    assert deliver.deliver_due() == {"delivered": 1}
    assert [m["to"] for m in sms.accepted] == [make_phone(crm, dead.customer_id)]
    assert "生日快乐" in sms.accepted[0]["text"] and sms.accepted[0]["id"] == f"care-{dead.id}"


def make_phone(crm: CRM, customer_id: int) -> str:
    return crm.export_customer(customer_id)["customer"]["phone"]


def test_sms_refused_goes_dead_at_once(crm: CRM, campaigns: dict[str, Campaign], sms: FakeSmsGateway) -> None:
    _birthday_customer(crm, "sms")
    run_campaign(crm, campaigns["birthday"], DAY)
    bad = SmsGateway(sms.url, "wrong-token")  # 401: retrying cannot help
    assert Deliverer(crm, campaigns, Senders(NO_RASA, sms=bad)).deliver_due() == {"dead": 1}


def test_no_push_channel_defers_to_the_next_chat(crm: CRM, campaigns: dict[str, Campaign]) -> None:
    cid = make.customer(crm, name="韩梅梅", birthday=date(1990, 5, 31), channel="rest")
    run_campaign(crm, campaigns["birthday"], DAY)
    assert Deliverer(crm, campaigns, Senders(NO_RASA)).deliver_due() == {"deferred": 1}
    [message] = crm.care.take_deferred(cid, "rest", "demo-sender")
    assert "韩梅梅" in message.text


def test_paused_campaign_does_not_run_and_preview_writes_nothing(crm: CRM, campaigns: dict[str, Campaign]) -> None:
    make.customer(crm, birthday=date(1990, 5, 31))
    crm.care.set_paused("birthday", True, "test")
    assert run_campaign(crm, campaigns["birthday"], DAY).paused
    result = preview(crm, campaigns["birthday"], DAY)
    assert result.summary.planned == 1 and "生日快乐" in result.messages[0]["text"]
    assert crm.care.counts() == {}
    crm.care.set_paused("birthday", False, "test")
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 1
    assert run_campaign(crm, campaigns["birthday"], DAY).queued == 0  # the same day again: nothing new


def test_core_customers_get_the_birthday_coupon_once(crm: CRM, campaigns: dict[str, Campaign],
                                                     sms: FakeSmsGateway) -> None:
    core = _birthday_customer(crm, "sms", tier="core")
    run_campaign(crm, campaigns["birthday"], DAY)
    Deliverer(crm, campaigns, Senders(NO_RASA, sms=SmsGateway(sms.url, sms.token))).deliver_due()
    [text] = [m["text"] for m in sms.accepted]
    assert "生日礼券" in text and "满99减20" in text
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session
    from crm_adapter.models import Coupon
    with Session(crm.engine, future=True) as session:
        assert session.execute(select(func.count()).select_from(Coupon).where(Coupon.customer_id == core)).scalar_one() == 1
