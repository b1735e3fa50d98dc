"""The service desk's records on every backend: staff and sessions, the
queue's order and promises, claiming races, replies, transfers, resolution,
CSAT on the escalation, and the append-only timeline."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from crm_adapter import CRM, servicedesk
from crm_adapter.errors import InvalidInput, NotFound
from crm_adapter.models import Escalation, EscalationEvent, Staff
from tests.crm_adapter.conftest import Clock

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _desk_always_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "00:00-24:00")
    monkeypatch.delenv("KEFU_DESK_SLA_FIRST_RESPONSE", raising=False)
    monkeypatch.delenv("KEFU_DESK_SLA_RESOLUTION", raising=False)


def _agents(crm: CRM, *names: str, role: str = "agent", max_open: int = 5) -> None:
    for name in names:
        crm.desk.create_staff(name, f"客服{name}", role, PASSWORD, max_open=max_open)


def _escalate(crm: CRM, sender: str, customer_id=None, reason: str = "request_human",
              channel: str = "socketio", **kwargs) -> int:
    return crm.create_escalation(customer_id, channel, sender, reason, f"esc:{sender}:{reason}", **kwargs).id


def _kinds(crm: CRM, escalation_id: int) -> list[str]:
    return [e.kind for e in crm.desk.timeline(escalation_id)]


# -- staff and sessions ---------------------------------------------------------

def test_passwords_are_salted_scrypt_and_verify() -> None:
    first, second = servicedesk.hash_password(PASSWORD), servicedesk.hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$") and PASSWORD not in first
    assert servicedesk.password_matches(PASSWORD, first)
    assert not servicedesk.password_matches("wrong password!", first)
    assert not servicedesk.password_matches(PASSWORD, "garbage")


def test_login_session_and_logout(crm: CRM) -> None:
    _agents(crm, "alice")
    token, session = crm.desk.login("alice", PASSWORD)
    assert session.staff.username == "alice" and session.staff.role == "agent" and len(session.csrf_token) >= 32
    again = crm.desk.session(token)
    assert again is not None and again.csrf_token == session.csrf_token and again.staff.status == "online"
    assert crm.desk.session(token + "x") is None and crm.desk.session("") is None
    crm.desk.logout(token)
    assert crm.desk.session(token) is None


def test_sessions_expire(crm: CRM, clock: Clock) -> None:
    _agents(crm, "alice")
    token, _ = crm.desk.login("alice", PASSWORD)
    clock.advance(hours=13)
    assert crm.desk.session(token) is None


def test_wrong_passwords_lock_the_account_for_a_while(crm: CRM, clock: Clock) -> None:
    _agents(crm, "alice")
    for _ in range(servicedesk.LOGIN_MAX_FAILURES):
        with pytest.raises(InvalidInput, match="用户名或密码错误"):
            crm.desk.login("alice", "not the password")
    with pytest.raises(InvalidInput, match="失败次数过多"):
        crm.desk.login("alice", PASSWORD)  # even the right one, while locked
    clock.advance(minutes=16)
    assert crm.desk.login("alice", PASSWORD)[1].staff.username == "alice"


def test_unknown_user_and_bad_accounts_are_refused(crm: CRM) -> None:
    with pytest.raises(InvalidInput, match="用户名或密码错误"):
        crm.desk.login("nobody", PASSWORD)
    with pytest.raises(InvalidInput, match="密码至少"):
        crm.desk.create_staff("bob", "Bob", "agent", "short")
    with pytest.raises(InvalidInput, match="角色"):
        crm.desk.create_staff("bob", "Bob", "root", PASSWORD)
    _agents(crm, "bob")
    with pytest.raises(InvalidInput, match="已存在"):
        crm.desk.create_staff("bob", "Bob", "agent", PASSWORD)


def test_disabling_or_new_password_ends_sessions(crm: CRM) -> None:
    _agents(crm, "alice", "bob")
    alice, _ = crm.desk.login("alice", PASSWORD)
    bob, _ = crm.desk.login("bob", PASSWORD)
    crm.desk.set_password("alice", "another long password")
    crm.desk.set_active("bob", False)
    assert crm.desk.session(alice) is None and crm.desk.session(bob) is None
    assert crm.desk.login("alice", "another long password")[1].staff.username == "alice"
    with pytest.raises(InvalidInput):
        crm.desk.login("bob", PASSWORD)


# -- the queue --------------------------------------------------------------------

def test_escalation_starts_sla_clocks_and_timeline(crm: CRM, clock: Clock) -> None:
    eid = _escalate(crm, "s1")
    conv = crm.desk.conversation(eid)
    created = clock.now
    assert conv.status == "pending" and conv.priority == "normal"
    assert conv.first_response_due_at == (created + timedelta(minutes=3)).astimezone(conv.created_at.tzinfo)
    assert conv.resolve_due_at == (created + timedelta(minutes=120)).astimezone(conv.created_at.tzinfo)
    assert _kinds(crm, eid) == ["created"]
    clock.advance(minutes=4)
    assert crm.desk.conversation(eid).first_response_breached
    assert not crm.desk.conversation(eid).resolve_breached


def test_queue_orders_by_priority_tier_and_waiting_time(crm: CRM, clock: Clock) -> None:
    anonymous_early = _escalate(crm, "early")
    clock.advance(minutes=10)
    potential = _escalate(crm, "potential", customer_id=_customer_of_tier(crm, "potential"))
    core = _escalate(crm, "core", customer_id=1)  # 张伟 is core: high priority and core bonus
    clock.advance(minutes=1)
    order = [c.id for c in crm.desk.conversations()]
    assert order.index(core) < order.index(anonymous_early)  # waited 11 vs 1+30+15
    assert order.index(anonymous_early) < order.index(potential)  # 11 vs 1+5
    place = crm.desk.queue_place(potential)
    assert place.ahead == 2 and place.expected_wait_minutes >= 1
    assert crm.desk.queue_place(core).ahead == 0


def _customer_of_tier(crm: CRM, tier: str) -> int:
    from sqlalchemy.orm import Session

    from crm_adapter.models import Customer
    with Session(crm.engine, future=True) as s:
        cid = s.execute(select(Customer.id).where(Customer.tier == tier, Customer.id != 1).limit(1)).scalar_one()
    return cid


def test_expected_wait_shrinks_with_agents_present(crm: CRM) -> None:
    ids = [_escalate(crm, f"w{i}") for i in range(4)]
    alone = crm.desk.queue_place(ids[-1]).expected_wait_minutes
    _agents(crm, "a1", "a2", "a3", "a4")
    for name in ("a1", "a2", "a3", "a4"):
        crm.desk.login(name, PASSWORD)
    assert crm.desk.queue_place(ids[-1]).expected_wait_minutes < alone


def test_claim_reply_transfer_note_resolve(crm: CRM, clock: Clock) -> None:
    _agents(crm, "alice", "bob")
    eid = _escalate(crm, "s2")
    with pytest.raises(InvalidInput, match="不在您名下"):
        crm.desk.authorise_reply(eid, "alice")  # not claimed yet
    conv = crm.desk.claim(eid, "alice")
    assert conv.status == "open" and conv.assigned_to == "alice"
    assert crm.desk.claim(eid, "alice").status == "open"  # again: harmless
    with pytest.raises(InvalidInput, match="已被其他客服接入"):
        crm.desk.claim(eid, "bob")
    with pytest.raises(InvalidInput, match="不在您名下"):
        crm.desk.authorise_reply(eid, "bob")
    clock.advance(seconds=40)
    crm.desk.authorise_reply(eid, "alice")
    answered = crm.desk.record_agent_message(eid, "alice", "您好，我来帮您看看")
    assert answered.first_response_at is not None and not answered.first_response_breached
    crm.desk.add_note(eid, "alice", "客户很着急，先查物流")
    with pytest.raises(InvalidInput, match="不在您名下"):
        crm.desk.transfer(eid, "bob", "bob")  # only its agent (or a manager) hands it on
    assert crm.desk.transfer(eid, "alice", "bob", note="物流问题请你跟进").assigned_to == "bob"
    crm.desk.authorise_reply(eid, "bob")
    with pytest.raises(InvalidInput):
        crm.desk.resolve(eid, "alice")
    done = crm.desk.resolve(eid, "bob", summary="已补发")
    assert done.status == "resolved" and done.resolved_by == "bob"
    with pytest.raises(InvalidInput, match="已结束"):
        crm.desk.authorise_reply(eid, "bob")
    assert _kinds(crm, eid) == ["created", "claimed", "agent_message", "note", "transferred", "resolved"]
    timeline = crm.desk.timeline(eid)
    assert timeline[4].body == "alice → bob：物流问题请你跟进" and timeline[3].actor == "alice"


def test_two_agents_claiming_at_once_one_wins(crm: CRM) -> None:
    names = [f"r{i}" for i in range(6)]
    _agents(crm, *names)
    eid = _escalate(crm, "race")
    winners, barrier = [], threading.Barrier(len(names))

    def claim(name: str) -> None:
        barrier.wait()
        try:
            crm.desk.claim(eid, name)
            winners.append(name)
        except InvalidInput:
            pass

    threads = [threading.Thread(target=claim, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert crm.desk.conversation(eid).assigned_to == winners[0]
    assert _kinds(crm, eid).count("claimed") == 1


def test_customer_messages_while_queued_get_a_notice_at_most_every_two_minutes(crm: CRM, clock: Clock) -> None:
    eid = _escalate(crm, "s3")
    conv, notice = crm.desk.customer_wrote("socketio", "s3")
    assert conv.id == eid and notice
    assert crm.desk.customer_wrote("socketio", "s3")[1] is False
    clock.advance(minutes=2)
    assert crm.desk.customer_wrote("socketio", "s3")[1] is True
    _agents(crm, "alice")
    crm.desk.claim(eid, "alice")
    clock.advance(minutes=5)
    assert crm.desk.customer_wrote("socketio", "s3")[1] is False  # an agent has it now
    assert crm.desk.customer_wrote("socketio", "someone-else") == (None, False)


def test_asking_again_reuses_the_escalation_and_can_raise_it(crm: CRM) -> None:
    first = _escalate(crm, "s4")
    again = crm.create_escalation(None, "socketio", "s4", "起火了，我要找律师", "esc:s4:again")
    assert again.id == first and again.priority == "high"
    assert crm.desk.conversation(first).first_response_due_at - crm.desk.conversation(first).created_at == \
        timedelta(minutes=1)
    assert _kinds(crm, first) == ["created", "raised"]


def test_out_of_hours_escalation_is_a_callback_whose_clocks_start_at_opening(
        crm: CRM, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DESK_HOURS", "09:00-21:00")
    china = timezone(timedelta(hours=8))
    clock.now = datetime(2026, 11, 23, 23, 30, tzinfo=china)
    assert not servicedesk.desk_open(clock.now)
    eid = _escalate(crm, "night", customer_id=2, callback=True)
    conv = crm.desk.conversation(eid)
    assert conv.callback and conv.callback_phone and "*" in conv.callback_phone
    assert conv.first_response_due_at == datetime(2026, 11, 24, 9, 3, tzinfo=china)
    assert servicedesk.next_opening(clock.now) == datetime(2026, 11, 24, 1, 0)
    clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=china)
    assert servicedesk.desk_open(clock.now)


def test_desk_hours_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    china = timezone(timedelta(hours=8))
    monkeypatch.setenv("KEFU_DESK_HOURS", "20:00-02:00")
    assert servicedesk.desk_open(datetime(2026, 1, 1, 1, 0, tzinfo=china))
    assert not servicedesk.desk_open(datetime(2026, 1, 1, 3, 0, tzinfo=china))
    monkeypatch.setenv("KEFU_DESK_HOURS", "nonsense")
    assert servicedesk.desk_hours() == (servicedesk.time(9), servicedesk.time(21))
    monkeypatch.setenv("KEFU_DESK_SLA_FIRST_RESPONSE", "high:2,normal:0")
    assert servicedesk._minutes_by_priority("KEFU_DESK_SLA_FIRST_RESPONSE", {"high": 1, "normal": 3}) == \
        {"high": 1, "normal": 3}


def test_auto_assign_respects_presence_and_limits(crm: CRM, clock: Clock) -> None:
    _agents(crm, "alice", "bob", max_open=1)
    ids = [_escalate(crm, f"aa{i}") for i in range(3)]
    assert crm.desk.auto_assign() == []  # nobody is logged in
    crm.desk.login("alice", PASSWORD)
    crm.desk.login("bob", PASSWORD)
    assigned = crm.desk.auto_assign()
    assert sorted(c.assigned_to for c in assigned) == ["alice", "bob"]
    assert [c.id for c in assigned] == ids[:2]  # longest waiting first
    assert crm.desk.auto_assign() == []  # both at their limit
    clock.advance(minutes=5)  # presence lapses without a heartbeat
    crm.desk.resolve(ids[0], assigned[0].assigned_to)
    assert crm.desk.auto_assign() == []
    crm.desk.heartbeat("alice")
    crm.desk.heartbeat("bob")
    assert [c.id for c in crm.desk.auto_assign()] == [ids[2]]
    assert "assigned" in _kinds(crm, ids[2])


def test_csat_after_a_handoff_lands_on_that_escalation_only(crm: CRM) -> None:
    _agents(crm, "alice")
    eid = _escalate(crm, "s5")
    crm.desk.claim(eid, "alice")
    crm.desk.resolve(eid, "alice")
    crm.record_csat(None, "socketio", "someone-else", 1, "csat:other", escalation_id=eid)
    assert crm.desk.conversation(eid).csat_score is None  # not that customer's chat
    crm.record_csat(None, "socketio", "s5", 5, "csat:s5", escalation_id=eid)
    assert crm.desk.conversation(eid).csat_score == 5
    assert _kinds(crm, eid)[-1] == "csat"
    assert crm.desk.stats().csat_avg_today == 5


def test_canned_replies(crm: CRM) -> None:
    crm.desk.save_canned_reply("/退款", "退款时效", "退款将在1-3个工作日内原路退回。")
    crm.desk.save_canned_reply("/退款", "退款时效", "退款将在1-5个工作日内原路退回。")
    assert [(c.code, c.body) for c in crm.desk.canned_replies()] == [("/退款", "退款将在1-5个工作日内原路退回。")]
    with pytest.raises(InvalidInput):
        crm.desk.save_canned_reply("/a b", "x", "y")


def test_timeline_is_append_only_and_feeds_the_desk(crm: CRM) -> None:
    start = crm.desk.last_event_id()
    eid = _escalate(crm, "s6")
    _agents(crm, "alice")
    crm.desk.claim(eid, "alice")
    feed = crm.desk.events_since(start)
    assert [(e.escalation_id, e.kind) for e in feed] == [(eid, "created"), (eid, "claimed")]
    assert not hasattr(crm.desk, "delete_event") and not hasattr(crm.desk, "edit_event")


def test_unknown_escalation_and_bad_text(crm: CRM) -> None:
    _agents(crm, "alice")
    with pytest.raises(NotFound):
        crm.desk.claim(999999, "alice")
    eid = _escalate(crm, "s7")
    for bad in ("", "   ", "x" * 2001):
        with pytest.raises(InvalidInput):
            crm.desk.add_note(eid, "alice", bad)
    with pytest.raises(InvalidInput, match="没有这个客服"):
        crm.desk.claim(eid, "ghost")
    assert _kinds(crm, eid) == ["created"]


def test_erasure_scrubs_the_timeline_and_callback_phone(crm: CRM) -> None:
    _agents(crm, "alice")
    eid = _escalate(crm, "s8", customer_id=2, callback=True)
    crm.desk.claim(eid, "alice")
    crm.desk.record_agent_message(eid, "alice", "李娜您好，您的手机13900000000已登记")
    crm.erase_customer(2, "erase:2")
    from sqlalchemy.orm import Session
    with Session(crm.engine, future=True) as s:
        bodies = [b for b in s.execute(select(EscalationEvent.body).where(
            EscalationEvent.escalation_id == eid)).scalars() if b]
        assert not any("13900000000" in b or "李娜" in b for b in bodies)
        assert s.get(Escalation, eid).callback_phone is None
        assert s.execute(select(Staff.username)).scalars().all() == ["alice"]


def test_the_message_that_asked_for_a_person_is_not_news_to_the_desk(crm: CRM, clock: Clock) -> None:
    """Read late by the feed, it gets no queue notice and is not a live turn."""
    asked_at = clock.now
    clock.advance(seconds=1)  # the action runs after the message arrived
    eid = _escalate(crm, "s9")
    assert crm.desk.customer_wrote("socketio", "s9", asked_at) == (None, False)
    assert crm.desk.conversation(eid).last_customer_message_at is None
    clock.advance(seconds=5)
    assert crm.desk.customer_wrote("socketio", "s9", clock.now)[1] is True
