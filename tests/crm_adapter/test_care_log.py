"""The care send log's life: claim, route (consent, quiet hours), retries, deferral,
delivery by the bot, follow-ups, metrics and erasure (crm_adapter.care)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy.orm import Session

from crm_adapter import CRM
from crm_adapter.care import CampaignRules, CareSettings
from crm_adapter.errors import InvalidInput
from crm_adapter.models import CareSend, Complaint, Consent
from tests.crm_adapter import care_fixtures as make
from tests.crm_adapter.conftest import Clock

BIRTHDAY = CampaignRules("birthday", "birthday", "marketing", variants=("A", "B"))
DAY = date(2026, 5, 31)


def queue(crm: CRM, rules: CampaignRules = BIRTHDAY, day: date = DAY) -> int:
    return sum(crm.care.enqueue(rules, batch) for batch in crm.care.plan(rules, day))


def china(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    """A China wall-clock time on ``day`` as naive UTC."""
    return datetime(day.year, day.month, day.day, hour, minute) - timedelta(hours=8)


def test_quiet_hour_boundary_in_the_customers_zone(empty_crm: CRM, clock: Clock) -> None:
    shanghai = make.customer(empty_crm, birthday=date(1990, 5, 31))
    london = make.customer(empty_crm, birthday=date(1990, 5, 31), timezone="Europe/London")
    clock.now = china(9)
    queue(empty_crm)
    care = empty_crm.care
    tasks = {t.customer_id: t for t in care.claim()}
    # 20:59 in Shanghai: allowed. 21:00: the care window (21:00-09:00) holds it till 09:00.
    assert care.route(tasks[shanghai], now=china(20, 59)).action == "send"
    late = care.route(tasks[shanghai], now=china(21, 0))
    assert (late.action, late.reason, late.retry_at) == ("later", "quiet_hours", china(9, 0, DAY + timedelta(days=1)))
    # London is 7 hours behind in summer: 21:00 China is 14:00 there.
    assert care.route(tasks[london], now=china(21, 0)).action == "send"
    london_2059 = datetime(2026, 5, 31, 19, 59)  # 20:59 BST
    assert care.route(tasks[london], now=london_2059).action == "send"
    assert care.route(tasks[london], now=london_2059 + timedelta(minutes=1)).action == "later"


def test_own_quiet_hours_are_respected_too(empty_crm: CRM, clock: Clock) -> None:
    owl = make.customer(empty_crm, birthday=date(1990, 5, 31))
    make.quiet_hours(empty_crm, owl, time(12, 0), time(14, 0))
    clock.now = china(9)
    queue(empty_crm)
    task = empty_crm.care.claim()[0]
    route = empty_crm.care.route(task, now=china(12, 30))
    assert route.action == "later" and route.retry_at == china(14, 0)


def test_unsubscribe_after_selection_stops_the_message(empty_crm: CRM, clock: Clock) -> None:
    cid = make.customer(empty_crm, birthday=date(1990, 5, 31))
    clock.now = china(10)
    queue(empty_crm)
    empty_crm.set_marketing_consent(cid, "all", "marketing", False, "chat", "t:unsub")
    task = empty_crm.care.claim()[0]
    route = empty_crm.care.route(task)
    assert (route.action, route.reason) == ("skip", "no_consent")
    empty_crm.care.skip(task, route.reason)
    assert empty_crm.care.get(task.id).status == "skipped"


def test_retries_back_off_and_end_dead(empty_crm: CRM, clock: Clock) -> None:
    make.customer(empty_crm, birthday=date(1990, 5, 31))
    clock.now = china(10)
    empty_crm.care.settings = CareSettings(max_attempts=3, retry_base=timedelta(minutes=1))
    queue(empty_crm)
    care = empty_crm.care
    waits = []
    for attempt in range(1, 4):
        tasks = care.claim()
        assert len(tasks) == 1, attempt
        status = care.fail(tasks[0], ConnectionError("gateway down"))
        row = care.get(tasks[0].id)
        assert row.attempts == attempt and "ConnectionError" in row.last_error
        waits.append(row.next_attempt_at - clock.now)
        assert care.claim() == []  # not due before the back-off ends
        clock.advance(hours=1)
        if attempt < 3:
            assert status == "failed"
    assert status == "dead"
    assert 30 <= waits[0].total_seconds() <= 60 and 60 <= waits[1].total_seconds() <= 120
    assert care.claim() == [] and [d.id for d in care.dead_letters()] == [tasks[0].id]
    assert care.requeue(tasks[0].id) and len(care.claim()) == 1
    with pytest.raises(InvalidInput):
        care.requeue("abc")


def test_a_lapsed_lease_gives_the_row_back(empty_crm: CRM, clock: Clock) -> None:
    make.customer(empty_crm, birthday=date(1990, 5, 31))
    clock.now = china(10)
    queue(empty_crm)
    care = empty_crm.care
    first = care.claim()
    assert len(first) == 1 and care.claim() == []
    clock.advance(seconds=care.settings.lease.total_seconds() + 1)
    second = care.claim()
    assert [t.id for t in second] == [first[0].id]
    assert not care.sent(first[0], "wechat")  # the first sender lost its lease
    assert care.sent(second[0], "wechat")


def test_bot_says_a_message_once_and_deferred_ones_at_the_next_chat(empty_crm: CRM, clock: Clock) -> None:
    cid = make.customer(empty_crm, birthday=date(1990, 5, 31))
    clock.now = china(10)
    queue(empty_crm)
    care = empty_crm.care
    task = care.claim()[0]
    assert care.mark_delivered(task.id) is None  # no text yet: nothing to say
    care.set_text(task, "生日快乐！")
    care.defer(task, "outside_window", "wechat")
    assert care.take_deferred(cid, "web", "sess-1") != []
    assert care.get(task.id).status == "delivered"
    assert care.take_deferred(cid, "web", "sess-2") == []
    assert care.mark_delivered(task.id) is None  # a retried trigger says nothing twice


def test_deferred_messages_expire(empty_crm: CRM, clock: Clock) -> None:
    cid = make.customer(empty_crm, birthday=date(1990, 5, 31))
    clock.now = china(10)
    queue(empty_crm)
    task = empty_crm.care.claim()[0]
    empty_crm.care.set_text(task, "生日快乐！")
    empty_crm.care.defer(task, "no_push_channel")
    clock.advance(days=8)
    assert empty_crm.care.take_deferred(cid, "web", "s") == []
    row = empty_crm.care.get(task.id)
    assert (row.status, row.reason) == ("skipped", "expired")


def test_followup_not_solved_reopens_the_complaint(empty_crm: CRM, clock: Clock) -> None:
    cid = make.customer(empty_crm, marketing=False)
    ticket = make.complaint(empty_crm, cid, created=datetime(2026, 5, 20), resolved_at=datetime(2026, 5, 28, 2))
    rules = CampaignRules("followup", "complaint_followup", "service", {"after_days": 3})
    clock.now = china(10)
    assert queue(empty_crm, rules) == 1
    task = empty_crm.care.claim()[0]
    empty_crm.care.set_text(task, "您反映的问题解决了吗？")
    empty_crm.care.sent(task, "wechat", "openid-1")
    assert empty_crm.care.record_followup(task.id, "someone-else", False, "k0") is None  # not said there
    assert empty_crm.care.record_followup(task.id, "openid-1", False, "k1") == ticket
    with Session(empty_crm.engine, future=True) as session:
        complaint = session.query(Complaint).filter_by(ticket_number=ticket).one()
        assert complaint.status == "open" and complaint.resolved_at is None
    assert empty_crm.care.get(task.id).outcome == "unsolved"


def test_metrics_on_hand_computed_data(empty_crm: CRM, clock: Clock) -> None:
    empty_crm.care.settings = CareSettings(reply_hours=24, convert_days=7)
    t0 = datetime(2026, 5, 1, 2)
    people = [make.customer(empty_crm) for _ in range(5)]
    product = make.product(empty_crm)
    rows = [
        # variant, status, sent, delivered, replied
        ("A", "delivered", t0, t0, t0 + timedelta(hours=2)),   # replied, converted
        ("A", "delivered", t0, t0, t0 + timedelta(hours=30)),  # replied too late; opted out
        ("A", "skipped", None, None, None),
        ("B", "sent", t0, None, None),                          # sent (email), converted after 8 days: no
        ("B", "failed", None, None, None),
    ]
    with Session(empty_crm.engine, future=True) as session, session.begin():
        for cid, (variant, status, sent, delivered, replied) in zip(people, rows):
            session.add(CareSend(campaign="birthday", customer_id=cid, occasion="birthday:2026", variant=variant,
                                 purpose="marketing", status=status, context={}, next_attempt_at=t0,
                                 expires_at=t0, created_at=t0, updated_at=t0, sent_at=sent,
                                 delivered_at=delivered, replied_at=replied))
        session.add(Consent(customer_id=people[1], channel="all", purpose="marketing", granted=False,
                            source="chat", recorded_by="customer", created_at=t0 + timedelta(days=1)))
        session.add(Consent(customer_id=people[0], channel="all", purpose="marketing", granted=False,
                            source="chat", recorded_by="customer", created_at=t0 - timedelta(days=1)))
    make.order(empty_crm, people[0], product, t0 + timedelta(days=3))
    make.order(empty_crm, people[3], product, t0 + timedelta(days=8))
    make.order(empty_crm, people[1], product, t0 - timedelta(days=3))
    assert empty_crm.care.metrics("birthday") == [
        {"campaign": "birthday", "variant": "A", "selected": 2, "sent": 2, "delivered": 2, "replied": 1,
         "opted_out": 1, "converted": 1, "skipped": 1},
        {"campaign": "birthday", "variant": "B", "selected": 2, "sent": 1, "delivered": 0, "replied": 0,
         "opted_out": 0, "converted": 0, "skipped": 0},
    ]


def test_erasure_scrubs_care_rows_and_export_includes_them(empty_crm: CRM, clock: Clock) -> None:
    cid = make.customer(empty_crm, name="王小明", birthday=date(1990, 5, 31))
    clock.now = china(10)
    queue(empty_crm)
    task = empty_crm.care.claim()[0]
    empty_crm.care.set_text(task, "王小明，生日快乐！")
    empty_crm.care.defer(task, "no_push_channel")
    empty_crm.care.note_conversation(cid, "web", "browser-session-1")
    exported = empty_crm.export_customer(cid)
    assert exported["care_messages"][0]["text"] == "王小明，生日快乐！"
    assert exported["care_conversations"][0]["conversation_id"] == "browser-session-1"
    masked = empty_crm.export_customer(cid, masked=True)
    assert "王小明" not in str(masked["care_messages"])
    empty_crm.erase_customer(cid, "t:erase")
    row = empty_crm.care.get(task.id)
    assert row.text == "[已删除]" and row.context == {} and row.status == "skipped"
    assert "王小明" not in str(empty_crm.export_customer(cid))
    assert empty_crm.export_customer(cid)["care_conversations"] == []


def test_bad_input_is_refused_in_chinese_and_changes_nothing(empty_crm: CRM) -> None:
    cid = make.customer(empty_crm)
    for bad in ("pigeon", "", None):
        with pytest.raises(InvalidInput) as exc:
            empty_crm.care.set_channel_preference(cid, bad)
        assert "联系渠道" in exc.value.message_zh
    for bad in (None, "abc", -1, 0, True, 1.5, 2**63, str(2**63), float(2**64)):
        with pytest.raises(InvalidInput):
            empty_crm.care.mark_delivered(bad)
        with pytest.raises(InvalidInput):
            empty_crm.care.note_reply_to(bad)
    with pytest.raises(InvalidInput):
        empty_crm.care.record_followup("x", "conv", True, "k")
    assert empty_crm.export_customer(cid)["care_channel_preference"] == []
    empty_crm.care.set_channel_preference(cid, " SMS ")
    assert empty_crm.export_customer(cid)["care_channel_preference"][0]["channel"] == "sms"


def test_an_unreachable_database_is_crm_unavailable(tmp_path) -> None:
    from crm_adapter.errors import CRMUnavailable

    crm = CRM(f"sqlite:///{tmp_path / 'missing' / 'crm.sqlite3'}")
    for call in (lambda: crm.care.mark_delivered(1), lambda: crm.care.claim(), lambda: crm.care.metrics(),
                 lambda: crm.care.take_deferred(1, "web", "s"), lambda: crm.care.requeue(1)):
        with pytest.raises(CRMUnavailable):
            call()
