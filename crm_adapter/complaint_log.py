"""The complaint log managers review: list, search, detail, audited actions.

Why a module of its own and not more `CRM` methods: the log reads across
complaints, customers, escalations, orders and ratings for staff, while the
CRM's methods answer one customer in a chat.  Like the rest of
`crm_adapter` it knows nothing of HTTP or Rasa; the desk renders it.

Paging is keyset (``WHERE (created_at, id) < (:c, :i) ORDER BY created_at
DESC, id DESC LIMIT n``) over indexes that start with the filtered column
(migration 0007), so page 1,000 costs what page 1 does at a million rows.

Personal data (customer names, phones, emails and ID numbers inside free
text) is masked unless the reading staff member has ``pii_access``.

Every action (assign, status change, note, reopen) writes exactly one
`ComplaintEvent` in the same transaction as its change.

    python -m crm_adapter.complaint_log reindex [--events-url URL]
"""
from __future__ import annotations

import argparse
import base64
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from . import complaint_search, policy
from .errors import InvalidInput, NotFound
from .masking import guard_logger, mask_name, mask_phone, mask_text
from .models import (
    COMPLAINT_CATEGORIES,
    COMPLAINT_STATUSES,
    OPEN_COMPLAINT_STATUSES,
    SEVERITIES,
    TIERS,
    Complaint,
    ComplaintEvent,
    CsatRating,
    Customer,
    Escalation,
    EscalationEvent,
    Order,
    Staff,
)
from .views import COMPLAINT_CATEGORY_LABELS, COMPLAINT_STATUS_LABELS, ORDER_STATUS_LABELS, SEVERITY_LABELS

log = guard_logger(__name__)
T = TypeVar("T")

PAGE_SIZE = 50
#: A search matching more complaints than this is paged by the sort index (see `_conditions`).
COMMON_MATCHES = 5000
#: Counts stop here ("1000+"): an exact count of a broad filter at a million rows costs more than the page.
COUNT_CAP = 1000
MAX_PAGE_SIZE = 200
MAX_TEXT = 2000
#: What a manager may set; ``rejected`` is ``closed`` with outcome rejected (驳回).
TARGET_STATUSES = ("open", "pending", "resolved", "closed", "rejected")
NEEDS_REASON = ("closed", "rejected")
SORTS = {"created": Complaint.created_at, "sla": Complaint.sla_due_at}
TIER_LABELS = {"core": "核心客户", "potential": "潜力客户", "low": "低价值客户"}
CHANNEL_LABELS = {"rest": "接口", "socketio": "网站", "web": "网站", "wechat": "微信", "wecom": "企业微信"}
OUTCOME_LABELS = {"resolved": "已解决", "rejected": "已驳回"}
EVENT_LABELS = {
    "created": "创建投诉", "status": "状态变更", "assigned": "分配负责人", "note": "内部备注",
    "reopened": "重新打开", "message": "消息", "csat": "满意度评价",
    # the linked escalation's timeline (crm_adapter.servicedesk)
    "raised": "转人工", "queue_notice": "排队提醒", "claimed": "客服接入", "transferred": "转接",
    "agent_message": "客服回复", "resolved": "会话结束", "callback": "预约回电",
}
ANONYMOUS = "未识别客户"
SYSTEM = "system"

MSG_REASON = "关闭或驳回投诉时必须填写原因（不超过2000字）。"
MSG_TEXT = "内容不能为空，且不超过2000字。"
MSG_SAME_STATUS = "投诉已是该状态。"
MSG_CLOSED = "投诉已关闭，请先重新打开。"
MSG_NOT_CLOSED = "只有已解决或已关闭的投诉可以重新打开。"
MSG_NO_STAFF = "没有这个客服账号，或账号已停用。"
MSG_CURSOR = "翻页参数不正确，请从第一页重新开始。"


# -- filters ---------------------------------------------------------------

@dataclass(frozen=True)
class ComplaintFilter:
    """What the manager asked for; every field optional (None: no condition)."""

    status: Optional[str] = None
    category: Optional[str] = None
    severity: Optional[str] = None
    channel: Optional[str] = None
    tier: Optional[str] = None
    agent: Optional[str] = None
    date_from: Optional[date] = None  # China dates, inclusive
    date_to: Optional[date] = None
    sla_breached: Optional[bool] = None
    query: str = ""
    sort: str = "created"
    descending: bool = True

    def as_params(self) -> dict[str, str]:
        """Back to query-string parameters (links to the next page, the export)."""
        out: dict[str, str] = {}
        for name in ("status", "category", "severity", "channel", "tier", "agent", "query", "sort"):
            value = getattr(self, name)
            if value:
                out["q" if name == "query" else name] = value
        if self.date_from:
            out["from"] = self.date_from.isoformat()
        if self.date_to:
            out["to"] = self.date_to.isoformat()
        if self.sla_breached is not None:
            out["sla"] = "breached" if self.sla_breached else "ok"
        if not self.descending:
            out["dir"] = "asc"
        return out


def _choice(params: Mapping[str, str], name: str, allowed: Sequence[str], label: str) -> Optional[str]:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if value not in allowed:
        raise InvalidInput(f"筛选条件不正确：{label}。")
    return value


def _day(params: Mapping[str, str], name: str, label: str) -> Optional[date]:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{label}格式不正确，应为 YYYY-MM-DD。") from None


def parse_filter(params: Mapping[str, str]) -> ComplaintFilter:
    """A filter from query-string parameters; anything malformed is `InvalidInput` (Chinese)."""
    sla = _choice(params, "sla", ("breached", "ok"), "SLA")
    agent = (params.get("agent") or "").strip() or None
    if agent is not None and len(agent) > 64:
        raise InvalidInput("筛选条件不正确：负责人。")
    query = (params.get("q") or "").strip()
    if len(query) > complaint_search.MAX_QUERY_LEN:
        raise InvalidInput(complaint_search.MSG_QUERY)
    channel = (params.get("channel") or "").strip() or None
    if channel is not None and len(channel) > 32:
        raise InvalidInput("筛选条件不正确：渠道。")
    f = ComplaintFilter(
        status=_choice(params, "status", COMPLAINT_STATUSES, "状态"),
        category=_choice(params, "category", COMPLAINT_CATEGORIES, "类别"),
        severity=_choice(params, "severity", SEVERITIES, "严重程度"),
        channel=channel,
        tier=_choice(params, "tier", TIERS, "客户分层"),
        agent=agent,
        date_from=_day(params, "from", "开始日期"),
        date_to=_day(params, "to", "结束日期"),
        sla_breached=None if sla is None else sla == "breached",
        query=query,
        sort=_choice(params, "sort", tuple(SORTS), "排序") or "created",
        descending=(_choice(params, "dir", ("asc", "desc"), "排序方向") or "desc") == "desc",
    )
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise InvalidInput("开始日期不能晚于结束日期。")
    return f


# -- views -----------------------------------------------------------------

@dataclass(frozen=True)
class ComplaintRow:
    """One line of the log (times in China time; PII masked unless allowed)."""

    id: int
    ticket_number: str
    created_at: datetime
    category: str
    category_label: str
    severity: str
    severity_label: str
    status: str
    status_label: str
    outcome: Optional[str]
    channel: str
    customer_id: Optional[int]
    customer_name: str
    customer_tier: Optional[str]
    contact_phone: Optional[str]
    assigned_to: Optional[str]
    description: str
    sla_due_at: datetime
    sla_breached: bool
    first_response_at: Optional[datetime]
    resolved_at: Optional[datetime]
    reopened_count: int


@dataclass(frozen=True)
class Page:
    rows: list[ComplaintRow]
    next_cursor: Optional[str]


@dataclass(frozen=True)
class LogEvent:
    """One line of a complaint's timeline: its own audit rows and its chats' events."""

    source: str  # "complaint" or "escalation"
    kind: str
    kind_label: str
    actor: str
    at: datetime
    from_status: Optional[str] = None
    to_status: Optional[str] = None
    body: Optional[str] = None


@dataclass(frozen=True)
class ComplaintDetail:
    row: ComplaintRow
    sender_id: str
    events: list[LogEvent]
    orders: list[dict[str, Any]]
    csat: list[dict[str, Any]]  # ratings given after the complaint was resolved
    escalation_ids: list[int] = field(default_factory=list)


def breached(c: Complaint, now: datetime) -> bool:
    """Past its promised time: resolved late, or still unresolved after it."""
    if c.resolved_at is not None:
        return c.resolved_at > c.sla_due_at
    return c.status in OPEN_COMPLAINT_STATUSES and c.sla_due_at < now


def _breached_sql(now: datetime) -> Any:
    return or_(Complaint.resolved_at > Complaint.sla_due_at,
               and_(Complaint.resolved_at.is_(None), Complaint.status.in_(OPEN_COMPLAINT_STATUSES),
                    Complaint.sla_due_at < now))


def _row(c: Complaint, customer: Optional[Customer], now: datetime, pii: bool) -> ComplaintRow:
    name = customer.name if customer is not None and not customer.deleted else None
    return ComplaintRow(
        id=c.id, ticket_number=c.ticket_number, created_at=policy.to_china(c.created_at),
        category=c.category, category_label=COMPLAINT_CATEGORY_LABELS.get(c.category, c.category),
        severity=c.severity, severity_label=SEVERITY_LABELS.get(c.severity, c.severity),
        status=c.status,
        status_label=OUTCOME_LABELS["rejected"] if c.outcome == "rejected" else COMPLAINT_STATUS_LABELS[c.status],
        outcome=c.outcome, channel=c.channel, customer_id=c.customer_id,
        customer_name=(name if pii else mask_name(name)) if name else ANONYMOUS,
        customer_tier=customer.tier if customer is not None else None,
        contact_phone=(c.contact_phone if pii else mask_phone(c.contact_phone)) if c.contact_phone else None,
        assigned_to=c.assigned_to, description=c.description if pii else mask_text(c.description),
        sla_due_at=policy.to_china(c.sla_due_at), sla_breached=breached(c, now),
        first_response_at=policy.to_china(c.first_response_at), resolved_at=policy.to_china(c.resolved_at),
        reopened_count=c.reopened_count or 0,
    )


def _text(value: Optional[str], message: str = MSG_TEXT) -> str:
    value = (value or "").strip()
    if not value or len(value) > MAX_TEXT:
        raise InvalidInput(message)
    return value


def encode_cursor(sort_value: datetime, complaint_id: int) -> str:
    raw = json.dumps([sort_value.isoformat(), complaint_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, cid = json.loads(raw)
        return datetime.fromisoformat(value), int(cid)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidInput(MSG_CURSOR) from None


class ComplaintLog:
    """Queries and audited actions over the CRM's complaints (shares its engine and clock)."""

    def __init__(self, crm: "CRM") -> None:  # noqa: F821
        self._crm = crm

    def _now(self) -> datetime:
        return self._crm._now()

    def _run(self, work: Callable[[Session, datetime], T], write: bool = False) -> T:
        return self._crm.run_unit(work, write=write)

    # -- reading -------------------------------------------------------------

    def _conditions(self, session: Session, f: ComplaintFilter, now: datetime, ordered: bool = True) -> list[Any]:
        """The WHERE clauses of a filter; ``ordered`` False: for counting, no page order to follow."""
        where: list[Any] = []
        for column, value in ((Complaint.status, f.status), (Complaint.category, f.category),
                              (Complaint.severity, f.severity), (Complaint.channel, f.channel),
                              (Complaint.assigned_to, f.agent)):
            if value is not None:
                where.append(column == value)
        if f.tier is not None:
            where.append(Complaint.customer_id.in_(select(Customer.id).where(Customer.tier == f.tier)))
        if f.date_from is not None:
            where.append(Complaint.created_at >= policy.china_day_start(f.date_from))
        if f.date_to is not None:
            where.append(Complaint.created_at < policy.china_day_start(f.date_to + timedelta(days=1)))
        if f.sla_breached is not None:
            where.append(_breached_sql(now) if f.sla_breached else ~_breached_sql(now))
        if f.query:
            words = complaint_search.query_tokens(f.query)
            if words:
                dialect = session.get_bind().dialect.name
                matches = complaint_search.matching_ids(dialect, words)
                if dialect == "postgresql" and not ordered:
                    # Counting has no order to keep: PostgreSQL drives it from the
                    # index matches and stops at the cap (30–110 ms at a million).
                    where.append(Complaint.id.in_(matches))
                elif dialect == "postgresql" and self._common(session, matches):
                    where.append(complaint_search.probe_each(words, Complaint.id))
                elif dialect == "postgresql":
                    # PostgreSQL cannot estimate a tsquery's selectivity and may walk
                    # the whole sort index probing each row for a rare word (seconds
                    # at a million); a MATERIALIZED CTE collects the few matches first.
                    found = matches.cte("matches").prefix_with("MATERIALIZED")
                    where.append(Complaint.id.in_(select(found.c.complaint_id)))
                else:
                    where.append(Complaint.id.in_(matches))
        return where



    @staticmethod
    def _common(session: Session, matches: Any) -> bool:
        """Whether more than `COMMON_MATCHES` complaints match (counted only that far)."""
        inner = matches.limit(COMMON_MATCHES + 1).subquery()
        return session.execute(select(func.count()).select_from(inner)).scalar_one() > COMMON_MATCHES

    def _fts_driven(self, session: Session, f: ComplaintFilter) -> Optional[list[str]]:
        """The words, when this page is best read from SQLite's FTS index in id order.

        A word found in many complaints (「快递」) makes ``id IN (matches)``
        build the whole match set before sorting; reading the FTS index
        backwards by rowid (= complaint id, i.e. filing order) instead streams
        and stops at a page.  Only for the default sort, newest or oldest
        first by filing, which is creation order.
        """
        if not f.query or f.sort != "created" or session.get_bind().dialect.name != "sqlite":
            return None
        words = complaint_search.query_tokens(f.query)
        if not words:
            return None
        return words if self._common(session, complaint_search.matching_ids("sqlite", words)) else None

    def _select(self, session: Session, f: ComplaintFilter, now: datetime, cursor: Optional[str]) -> Any:
        words = self._fts_driven(session, f)
        if words is not None:
            fts = complaint_search.fts_table()
            plain = replace(f, query="")
            where = self._conditions(session, plain, now) + [complaint_search.fts_match(words)]
            if cursor:
                _, cid = decode_cursor(cursor)
                where.append(fts.c.rowid < cid if f.descending else fts.c.rowid > cid)
            return (select(Complaint, Customer).select_from(fts)
                    .join(Complaint, Complaint.id == fts.c.rowid)
                    .outerjoin(Customer, Customer.id == Complaint.customer_id)
                    .where(*where).order_by(fts.c.rowid.desc() if f.descending else fts.c.rowid.asc()))
        column = SORTS[f.sort]
        query = select(Complaint, Customer).outerjoin(Customer, Customer.id == Complaint.customer_id)
        where = self._conditions(session, f, now)
        if cursor:
            value, cid = decode_cursor(cursor)
            value = policy.utc_naive(value) if value.tzinfo else value
            if f.descending:
                where.append(or_(column < value, and_(column == value, Complaint.id < cid)))
            else:
                where.append(or_(column > value, and_(column == value, Complaint.id > cid)))
        order = (column.desc(), Complaint.id.desc()) if f.descending else (column.asc(), Complaint.id.asc())
        return query.where(*where).order_by(*order)

    def page(self, f: ComplaintFilter, *, pii: bool = False, cursor: Optional[str] = None,
             size: int = PAGE_SIZE) -> Page:
        """One page of the log, newest first by default; ``next_cursor`` None on the last."""
        size = max(1, min(int(size), MAX_PAGE_SIZE))

        def work(session: Session, now: datetime) -> Page:
            found = session.execute(self._select(session, f, now, cursor).limit(size + 1)).all()
            rows = [_row(c, customer, now, pii) for c, customer in found[:size]]
            next_cursor = None
            if len(found) > size:
                last = found[size - 1][0]
                next_cursor = encode_cursor(getattr(last, SORTS[f.sort].key), last.id)
            return Page(rows, next_cursor)

        return self._run(work)

    def iter_rows(self, f: ComplaintFilter, *, pii: bool = False, batch: int = 500) -> Iterator[ComplaintRow]:
        """Every matching row, a batch (one short read) at a time: bounded memory for exports."""
        cursor: Optional[str] = None
        while True:
            page = self.page(f, pii=pii, cursor=cursor, size=min(batch, MAX_PAGE_SIZE))
            yield from page.rows
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count(self, f: ComplaintFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """How many match, counted up to ``cap`` (exact counts at a million rows cost seconds)."""
        def work(session: Session, now: datetime) -> tuple[int, bool]:
            inner = select(Complaint.id).where(*self._conditions(session, f, now, ordered=False)).limit(cap + 1).subquery()
            n = session.execute(select(func.count()).select_from(inner)).scalar_one()
            return min(n, cap), n > cap

        return self._run(work)

    def _complaint(self, session: Session, ticket: str, lock: bool = False) -> Complaint:
        ticket = (ticket or "").strip()
        if not ticket or len(ticket) > 20:
            raise NotFound(f"complaint {ticket[:20]!r}")
        query = select(Complaint).where(Complaint.ticket_number == ticket)
        if lock:
            query = query.with_for_update()
        complaint = session.execute(query).scalar_one_or_none()
        if complaint is None:
            raise NotFound(f"complaint {ticket!r}")
        return complaint

    def detail(self, ticket: str, *, pii: bool = False) -> ComplaintDetail:
        """The complaint, its whole timeline (audit rows + its chats' events), orders and later ratings."""
        def work(session: Session, now: datetime) -> ComplaintDetail:
            c = self._complaint(session, ticket)
            customer = session.get(Customer, c.customer_id) if c.customer_id else None
            own = session.execute(select(ComplaintEvent).where(ComplaintEvent.complaint_id == c.id)
                                  .order_by(ComplaintEvent.id)).scalars().all()
            escalation_ids = list(session.execute(select(Escalation.id).where(Escalation.complaint_id == c.id)
                                                  .order_by(Escalation.id)).scalars())
            chat = session.execute(select(EscalationEvent).where(EscalationEvent.escalation_id.in_(escalation_ids))
                                   .order_by(EscalationEvent.id)).scalars().all() if escalation_ids else []
            show = (lambda s: s) if pii else (lambda s: mask_text(s) if s else s)
            events = [LogEvent("complaint", "created", EVENT_LABELS["created"], SYSTEM,
                               policy.to_china(c.created_at), None, "open", show(c.description))]
            events += [LogEvent("complaint", e.kind, EVENT_LABELS.get(e.kind, e.kind), e.actor,
                                policy.to_china(e.created_at), e.from_status, e.to_status, show(e.body))
                       for e in own]
            events += [LogEvent("escalation", e.kind, EVENT_LABELS.get(e.kind, e.kind), e.actor,
                                policy.to_china(e.created_at), None, None, show(e.body)) for e in chat]
            events.sort(key=lambda e: e.at)
            orders = []
            order_ids = {c.order_id} - {None}
            for o in session.execute(select(Order).where(Order.id.in_(order_ids))).scalars() if order_ids else []:
                orders.append({"order_number": o.order_number, "status_label": ORDER_STATUS_LABELS.get(o.status, o.status),
                               "total": float(o.total or 0), "created_at": policy.to_china(o.created_at)})
            csat = []
            if c.resolved_at is not None:
                ratings = session.execute(
                    select(CsatRating).where(CsatRating.channel == c.channel, CsatRating.sender_id == c.sender_id,
                                             CsatRating.created_at >= c.resolved_at)
                    .order_by(CsatRating.created_at).limit(20)).scalars()
                csat = [{"score": r.score, "comment": show(r.comment), "at": policy.to_china(r.created_at)}
                        for r in ratings]
            return ComplaintDetail(_row(c, customer, now, pii), c.sender_id, events, orders, csat, escalation_ids)

        return self._run(work)

    # -- actions (each: one change + one audit row, one transaction) ---------

    def _audit(self, session: Session, c: Complaint, kind: str, actor: str, now: datetime, *,
               body: Optional[str] = None, from_status: Optional[str] = None,
               to_status: Optional[str] = None, first_response: bool = True) -> None:
        session.add(ComplaintEvent(complaint_id=c.id, kind=kind, actor=actor[:64], from_status=from_status,
                                   to_status=to_status, body=body, created_at=now))
        c.updated_at = now
        if first_response and c.first_response_at is None:
            c.first_response_at = now

    @staticmethod
    def _staff(session: Session, username: str) -> Staff:
        staff = session.execute(select(Staff).where(Staff.username == (username or "").strip())
                                ).scalar_one_or_none()
        if staff is None or not staff.active:
            raise InvalidInput(MSG_NO_STAFF)
        return staff

    def assign(self, ticket: str, to_username: str, by: str) -> ComplaintRow:
        def work(session: Session, now: datetime) -> ComplaintRow:
            c = self._complaint(session, ticket, lock=True)
            staff = self._staff(session, to_username)
            if c.status == "closed":
                raise InvalidInput(MSG_CLOSED)
            c.assigned_to = staff.username
            self._audit(session, c, "assigned", by, now, body=staff.username)
            return _row(c, None, now, False)

        return self._run(work, write=True)

    def change_status(self, ticket: str, to_status: str, by: str, reason: Optional[str] = None) -> ComplaintRow:
        """open / pending / resolved / closed / rejected; closing and rejecting need a reason."""
        if to_status not in TARGET_STATUSES:
            raise InvalidInput("状态不正确。")
        reason = (reason or "").strip() or None
        if to_status in NEEDS_REASON:
            reason = _text(reason, MSG_REASON)
        elif reason is not None and len(reason) > MAX_TEXT:
            raise InvalidInput(MSG_TEXT)

        def work(session: Session, now: datetime) -> ComplaintRow:
            c = self._complaint(session, ticket, lock=True)
            before = c.status
            if before == "closed":
                raise InvalidInput(MSG_CLOSED)
            status = "closed" if to_status == "rejected" else to_status
            if status == before:
                raise InvalidInput(MSG_SAME_STATUS)
            c.status = status
            if status in ("resolved", "closed"):
                c.resolved_at = c.resolved_at or now
                c.outcome = "rejected" if to_status == "rejected" else (c.outcome or "resolved")
            else:
                c.resolved_at, c.outcome = None, None
            self._audit(session, c, "status", by, now, body=reason, from_status=before, to_status=to_status)
            return _row(c, None, now, False)

        return self._run(work, write=True)

    def add_note(self, ticket: str, by: str, body: str) -> LogEvent:
        text_ = _text(body)

        def work(session: Session, now: datetime) -> LogEvent:
            c = self._complaint(session, ticket, lock=True)
            # A note is internal: it is not a response to the customer.
            self._audit(session, c, "note", by, now, body=text_, first_response=False)
            return LogEvent("complaint", "note", EVENT_LABELS["note"], by, policy.to_china(now), body=text_)

        return self._run(work, write=True)

    def reopen(self, ticket: str, by: str, reason: str) -> ComplaintRow:
        reason_ = _text(reason, "重新打开投诉时必须填写原因（不超过2000字）。")

        def work(session: Session, now: datetime) -> ComplaintRow:
            c = self._complaint(session, ticket, lock=True)
            if c.status not in ("resolved", "closed"):
                raise InvalidInput(MSG_NOT_CLOSED)
            before = c.status
            c.status, c.resolved_at, c.outcome = "open", None, None
            c.reopened_count = (c.reopened_count or 0) + 1
            self._audit(session, c, "reopened", by, now, body=reason_, from_status=before, to_status="open")
            return _row(c, None, now, False)

        return self._run(work, write=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``reindex``: (re)build the search index (descriptions, and transcripts with --events-url)."""
    import os

    from . import CRM

    parser = argparse.ArgumentParser(prog="python -m crm_adapter.complaint_log")
    sub = parser.add_subparsers(dest="command", required=True)
    reindex = sub.add_parser("reindex", help="index complaints for search")
    reindex.add_argument("--events-url", default=os.environ.get("KEFU_EVENTS_URL"),
                         help="SQLAlchemy URL of Rasa's SQL event broker database (transcripts)")
    args = parser.parse_args(argv)
    crm = CRM.from_env()
    try:
        n = complaint_search.refresh(crm.engine, crm._now(), args.events_url)
        print(f"已索引 {n} 条投诉")
    finally:
        crm.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
