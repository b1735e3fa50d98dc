"""The complaint log's contract on every backend: filters, keyset paging,
Chinese search over descriptions and transcripts, audited actions, masking."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import create_engine, func, select, text

from crm_adapter import CRM
from crm_adapter.complaint_log import ComplaintFilter, ComplaintLog, parse_filter
from crm_adapter.complaint_search import refresh
from crm_adapter.errors import InvalidInput, NotFound
from crm_adapter.models import Complaint, ComplaintEvent, ComplaintSearch

CH = "cltest"  # a channel of our own, so the seeded complaints stay out of the way


def _file(crm: CRM, key: Callable[[str], str], category: str, description: str, sender: str = "s1",
          customer_id=None, phone=None) -> str:
    return crm.create_complaint(customer_id, category, description, CH, sender, key("c"),
                                contact_phone=phone).ticket_number


def _events(crm: CRM) -> int:
    with crm.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ComplaintEvent)).scalar_one()


@pytest.fixture()
def log(crm: CRM) -> ComplaintLog:
    return ComplaintLog(crm)


def test_keyset_pages_cover_every_complaint_once_newest_first(crm, clock, key, log) -> None:
    filed = []
    for i in range(7):
        filed.append(_file(crm, key, "logistics", f"第{i}个快递问题"))
        clock.advance(minutes=1)
    seen, cursor = [], None
    while True:
        page = log.page(ComplaintFilter(channel=CH), cursor=cursor, size=3)
        seen += [r.ticket_number for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(filed))
    oldest_first = [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, descending=False), size=10).rows]
    assert oldest_first == filed


def test_filters_status_category_sla_and_dates(crm, clock, key, log) -> None:
    late = _file(crm, key, "quality", "质量有问题，屏幕裂了")
    soon = _file(crm, key, "price", "价格比别家贵")
    log.change_status(soon, "resolved", "boss")
    clock.advance(days=3)  # past every SLA: the quality one is still open
    assert [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, sla_breached=True)).rows] == [late]
    assert [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, sla_breached=False)).rows] == [soon]
    assert [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, category="price")).rows] == [soon]
    assert [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, status="open")).rows] == [late]
    today = clock.now.date()
    assert log.page(ComplaintFilter(channel=CH, date_from=today)).rows == []
    assert len(log.page(ComplaintFilter(channel=CH, date_to=today)).rows) == 2
    assert log.count(ComplaintFilter(channel=CH)) == (2, False)


def test_bad_filters_are_refused_in_chinese() -> None:
    for params in ({"status": "gone"}, {"from": "2026-13-01"}, {"sort": "name"},
                   {"from": "2026-02-02", "to": "2026-02-01"}, {"q": "长" * 101}):
        with pytest.raises(InvalidInput) as err:
            parse_filter(params)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in str(err.value))
    f = parse_filter({"status": "open", "q": "退款", "sla": "breached", "dir": "asc"})
    assert parse_filter(f.as_params()) == f


def test_search_finds_chinese_words_in_descriptions(crm, key, log) -> None:
    slow = _file(crm, key, "logistics", "快递太慢了，一个星期还没到")
    broken = _file(crm, key, "quality", "收到的杯子是碎的")
    assert refresh(crm.engine, crm._now()) >= 2
    found = lambda q: [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, query=q)).rows]  # noqa: E731
    assert found("快递") == [slow]
    assert found("杯子 碎") == [broken]
    assert found("退款") == []
    assert found("\" OR 1=1 --") == []  # query syntax never reaches the database


def test_search_covers_the_conversation_transcript(crm, key, log, tmp_path: Path) -> None:
    ticket = _file(crm, key, "service", "客服态度不好", sender="web-42")
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = create_engine(events_url, future=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, data TEXT)"))
        for sender, event in (("web-42", {"event": "user", "text": "我的发票一直开不出来"}),
                              ("web-42", {"event": "bot", "text": "正在为您查询"}),
                              ("other", {"event": "user", "text": "积分兑换失败"})):
            conn.execute(text("INSERT INTO events (sender_id, data) VALUES (:s, :d)"),
                         {"s": sender, "d": json.dumps(event, ensure_ascii=False)})
    engine.dispose()
    refresh(crm.engine, crm._now(), events_url)
    assert [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, query="发票")).rows] == [ticket]
    assert log.page(ComplaintFilter(channel=CH, query="积分")).rows == []


def test_descriptions_are_indexed_before_rasa_wrote_its_first_event(crm, key, log, tmp_path: Path) -> None:
    """A fresh install: the events table does not exist yet; the indexer must not fail its whole pass."""
    ticket = _file(crm, key, "service", "发票抬头开错了", sender="web-7")
    assert refresh(crm.engine, crm._now(), f"sqlite:///{tmp_path / 'no-events-yet.db'}") >= 1
    assert [r.ticket_number for r in log.page(ComplaintFilter(channel=CH, query="发票")).rows] == [ticket]


def test_each_action_writes_one_audit_row(crm, clock, key, log, db) -> None:
    ticket = _file(crm, key, "after_sales", "退货申请没人处理")
    crm.desk.create_staff("zhangsan", "张三", "agent", "correct-horse-battery")
    before = _events(crm)
    clock.advance(minutes=5)
    log.assign(ticket, "zhangsan", "boss")
    log.add_note(ticket, "boss", "已联系仓库")
    log.change_status(ticket, "resolved", "boss")
    log.reopen(ticket, "boss", "客户说问题还在")
    log.change_status(ticket, "rejected", "boss", "重复投诉")
    assert _events(crm) == before + 5
    detail = log.detail(ticket)
    kinds = [(e.kind, e.actor, e.to_status) for e in detail.events if e.source == "complaint"]
    assert kinds == [("created", "system", "open"), ("assigned", "boss", None), ("note", "boss", None),
                     ("status", "boss", "resolved"), ("reopened", "boss", "open"), ("status", "boss", "rejected")]
    row = detail.row
    assert (row.status, row.outcome, row.status_label, row.reopened_count, row.assigned_to) == \
        ("closed", "rejected", "已驳回", 1, "zhangsan")
    assert row.first_response_at is not None and row.resolved_at is not None


def test_refused_actions_change_nothing(crm, key, log) -> None:
    ticket = _file(crm, key, "other", "随便说说")
    before = _events(crm)
    with pytest.raises(InvalidInput, match="原因"):
        log.change_status(ticket, "closed", "boss", "  ")
    with pytest.raises(InvalidInput):
        log.change_status(ticket, "open", "boss")  # already open
    with pytest.raises(InvalidInput):
        log.assign(ticket, "nobody-here", "boss")
    with pytest.raises(InvalidInput):
        log.reopen(ticket, "boss", "再看看")  # not resolved
    with pytest.raises(InvalidInput):
        log.add_note(ticket, "boss", "")
    with pytest.raises(NotFound):
        log.add_note("TS-NOPE", "boss", "x")
    assert _events(crm) == before
    row = log.detail(ticket).row
    assert (row.status, row.assigned_to, row.first_response_at) == ("open", None, None)


def test_personal_data_masked_without_pii_access(crm, key, log) -> None:
    from tests.crm_adapter.test_crm_privacy import ZHANG

    ticket = crm.create_complaint(ZHANG, "service", "客服不回电话", CH, "s9", key("p"),
                                  contact_phone="13900139000").ticket_number
    masked = log.detail(ticket).row
    assert (masked.customer_name, masked.contact_phone) == ("张*", "139****9000")
    plain = log.detail(ticket, pii=True).row
    assert (plain.customer_name, plain.contact_phone) == ("张伟", "13900139000")
    # (descriptions arrive with phone numbers already masked by the CRM)


def test_erasure_removes_the_search_tokens_and_note_text(crm, key, log, db) -> None:
    from tests.crm_adapter.test_crm_privacy import ZHANG

    ticket = crm.create_complaint(ZHANG, "logistics", "张伟的快递丢了", "rest", "demo-zhangwei",
                                  key("z")).ticket_number
    log.add_note(ticket, "boss", "张伟住在浦东")
    refresh(crm.engine, crm._now())
    crm.erase_customer(ZHANG, key("erase"))
    with db() as session:
        cid = session.execute(select(Complaint.id).where(Complaint.ticket_number == ticket)).scalar_one()
        assert session.get(ComplaintSearch, cid) is None
        bodies = session.execute(select(ComplaintEvent.body).where(ComplaintEvent.complaint_id == cid)).scalars()
        assert all("张伟" not in (b or "") for b in bodies)
    export = crm.export_customer(ZHANG)
    assert export["complaint_events"] and all("浦东" not in (e["body"] or "") for e in export["complaint_events"])


def test_weekly_category_counts_in_sql_match_the_pure_function(crm, clock, key, db) -> None:
    from crm_adapter.analytics.complaint_kpis import category_week_counts, complaint_facts, per_category_per_week

    for days, category in ((0, "quality"), (2, "quality"), (3, "price"), (9, "quality")):
        clock.now = clock.now + timedelta(days=days)
        _file(crm, key, category, "测试")
    start, end = clock.now - timedelta(days=60), clock.now + timedelta(days=1)
    with db() as session:
        naive = lambda t: t.replace(tzinfo=None)  # noqa: E731
        expected = per_category_per_week(complaint_facts(session, naive(start), naive(end)))
        assert category_week_counts(session, naive(start), naive(end)) == expected
        assert sum(sum(c.values()) for c in expected.values()) >= 4


def test_common_word_search_pages_the_same_either_way(crm, clock, key, log, monkeypatch, backend) -> None:
    """SQLite reads a common word's matches from FTS in id order; pages must not change."""
    import crm_adapter.complaint_log as complaint_log

    for i in range(7):
        _file(crm, key, "logistics", f"快递第{i}次延误" if i != 3 else "杯子碎了")
        clock.advance(minutes=1)
    refresh(crm.engine, crm._now())

    def walk() -> list[str]:
        seen, cursor = [], None
        while True:
            page = log.page(ComplaintFilter(channel=CH, query="快递"), cursor=cursor, size=2)
            seen += [r.ticket_number for r in page.rows]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    by_index = walk()
    assert log.count(ComplaintFilter(channel=CH, query="快递")) == (6, False)
    monkeypatch.setattr(complaint_log, "COMMON_MATCHES", 1)  # every word is "common" now
    assert walk() == by_index and len(by_index) == 6
    assert log.count(ComplaintFilter(channel=CH, query="快递")) == (6, False)
    assert log.count(ComplaintFilter(channel=CH, query="快递"), cap=4) == (4, True)
    assert log.page(ComplaintFilter(channel=CH, query="快递 杯子")).rows == []  # both words: none
