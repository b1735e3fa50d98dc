"""The service desk's records: staff accounts and sessions, the queue of
escalated conversations, its SLA clocks and its append-only timeline.

Why here and not in the desk web app: the action server (which queues a chat
and tells the customer their place in line), the desk (which claims, replies
and resolves) and the manager views all need the same queue rules, and the
escalations already live in the CRM.  Like the rest of `crm_adapter` this
knows nothing of Rasa or HTTP; the desk turns these calls into pause/resume
events and messages.

Conversation status follows Chatwoot's model: ``pending`` (queued, no agent
yet), ``open`` (an agent has it), ``resolved`` (back to the bot).  Every
change writes one `EscalationEvent`, never updated or deleted, so a manager
can read who did what and when.

Configuration (environment, read at call time so tests and operators can
change it without a restart of the library):

* ``KEFU_DESK_HOURS`` — when people answer chats, China time, ``09:00-21:00``;
  ``00:00-24:00`` means around the clock.
* ``KEFU_DESK_SLA_FIRST_RESPONSE`` / ``KEFU_DESK_SLA_RESOLUTION`` — minutes
  per priority, ``high:1,normal:3`` and ``high:30,normal:120``.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from statistics import median
from typing import Callable, Iterable, Optional, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from . import policy, validation
from .errors import InvalidInput, NotFound
from .masking import mask_phone
from .models import (
    ACTIVE_ESCALATION_STATUSES,
    STAFF_ROLES,
    STAFF_STATUSES,
    CannedResponse,
    Customer,
    Escalation,
    EscalationEvent,
    Staff,
    StaffSession,
)
from .views import CHINA_TZ, ESCALATION_STATUS_LABELS, PRIORITY_LABELS

log = logging.getLogger(__name__)
T = TypeVar("T")

ROLE_LABELS = {"agent": "客服", "manager": "主管", "admin": "管理员"}
STAFF_STATUS_LABELS = {"online": "在线", "away": "离开", "offline": "离线"}
TIER_LABELS = {"core": "核心客户", "potential": "潜力客户", "low": "低价值客户"}
REASON_LABELS = {
    "request_human": "客户要求人工",
    "repeated_fallback": "机器人连续未能理解",
    "high_severity_complaint": "严重投诉",
    "negative_sentiment": "客户情绪激动",
}

DEFAULT_HOURS = "09:00-21:00"
DEFAULT_FIRST_RESPONSE = {"high": 1, "normal": 3}
DEFAULT_RESOLUTION = {"high": 30, "normal": 120}
#: Waiting-time equivalents that move a chat up the queue: a high-priority chat
#: waits as if it had waited 30 minutes longer, a core customer 15, potential 5.
QUEUE_BONUS_MINUTES = {"high": 30.0, "core": 15.0, "potential": 5.0}
#: A queued customer who keeps writing hears their place again at most this often.
QUEUE_NOTICE_EVERY = timedelta(minutes=2)
#: An agent counts as available while the desk has heard from them this recently.
PRESENCE_TIMEOUT = timedelta(seconds=90)
DEFAULT_HANDLE_MINUTES = 5.0
SESSION_TTL = timedelta(hours=12)
LOGIN_MAX_FAILURES = 5
LOGIN_LOCK = timedelta(minutes=15)
MIN_PASSWORD_LEN = 10
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

MSG_NOT_PENDING = "该会话已被其他客服接入。"
MSG_NOT_YOURS = "该会话不在您名下，请先让当前负责人转接给您。"
MSG_RESOLVED = "该会话已结束。"
MSG_NO_SUCH_STAFF = "没有这个客服账号，或账号已停用。"
MSG_LOGIN = "用户名或密码错误。"
MSG_LOCKED = "登录失败次数过多，请15分钟后再试。"
MSG_PASSWORD = f"密码至少需要{MIN_PASSWORD_LEN}个字符。"
MSG_TEXT = "内容不能为空，且不超过2000字。"
MSG_AGENT_FULL = "该客服当前接待量已满。"


# -- configuration ---------------------------------------------------------

def _minutes_by_priority(name: str, default: dict[str, int]) -> dict[str, int]:
    """``high:1,normal:3`` from the environment; a bad value keeps the default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return dict(default)
    result = dict(default)
    try:
        for part in raw.split(","):
            key, value = part.split(":")
            if key.strip() not in default or int(value) <= 0:
                raise ValueError(part)
            result[key.strip()] = int(value)
    except ValueError:
        log.warning("%s=%r is not like 'high:1,normal:3'; using the default", name, raw)
        return dict(default)
    return result


def desk_hours() -> tuple[time, Optional[time]]:
    """Opening and closing time (China time); closing None means midnight."""
    raw = os.environ.get("KEFU_DESK_HOURS", "").strip() or DEFAULT_HOURS
    try:
        start_s, end_s = raw.split("-")
        start = time.fromisoformat(start_s.strip())
        end = None if end_s.strip() in ("24:00", "24") else time.fromisoformat(end_s.strip())
    except ValueError:
        log.warning("KEFU_DESK_HOURS=%r is not like '09:00-21:00'; using %s", raw, DEFAULT_HOURS)
        return time(9), time(21)
    return start, end


def desk_open(now: datetime) -> bool:
    """Whether people answer chats at ``now`` (aware or naive UTC)."""
    start, end = desk_hours()
    local = policy.to_china(policy.utc_naive(now)).time()
    if end is None:
        return local >= start
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # e.g. 20:00-02:00


def hours_label() -> str:
    start, end = desk_hours()
    if start == time(0) and end is None:
        return "全天"
    return f"{start:%H:%M}-{'24:00' if end is None else format(end, '%H:%M')}"


def next_opening(now: datetime) -> datetime:
    """The next moment the desk opens (naive UTC); ``now`` if it is open."""
    now_utc = policy.utc_naive(now)
    if desk_open(now_utc):
        return now_utc
    start, _ = desk_hours()
    local = policy.to_china(now_utc)
    opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opening <= local:
        opening += timedelta(days=1)
    return policy.utc_naive(opening)


def sla_due(priority: str, queued_at: datetime) -> tuple[datetime, datetime]:
    """(first response due, resolution due); the clocks start when the desk opens."""
    start = next_opening(queued_at)
    first = _minutes_by_priority("KEFU_DESK_SLA_FIRST_RESPONSE", DEFAULT_FIRST_RESPONSE)
    resolve = _minutes_by_priority("KEFU_DESK_SLA_RESOLUTION", DEFAULT_RESOLUTION)
    return start + timedelta(minutes=first[priority]), start + timedelta(minutes=resolve[priority])


# -- passwords ---------------------------------------------------------------

def hash_password(password: str) -> str:
    """scrypt (memory-hard, in the standard library), salted, parameters kept in the hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT, dklen=32)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                                  p=int(p), dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- views -------------------------------------------------------------------

@dataclass(frozen=True)
class StaffView:
    id: int
    username: str
    display_name: str
    role: str
    role_label: str
    status: str
    status_label: str
    max_open: int
    active: bool
    last_seen_at: Optional[datetime]
    #: May see customers' personal data unmasked (complaint log, exports).
    pii_access: bool = False

    @property
    def is_manager(self) -> bool:
        return self.role in ("manager", "admin")


@dataclass(frozen=True)
class DeskSession:
    staff: StaffView
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class TimelineEvent:
    id: int
    escalation_id: int
    kind: str
    actor: str
    body: Optional[str]
    created_at: datetime


@dataclass(frozen=True)
class Conversation:
    """One escalated chat as the desk shows it (times in China time)."""

    id: int
    status: str
    status_label: str
    priority: str
    priority_label: str
    reason: str
    reason_label: str
    channel: str
    sender_id: str
    customer_id: Optional[int]
    customer_name: Optional[str]
    tier: Optional[str]
    tier_label: Optional[str]
    complaint_ticket: Optional[str]
    assigned_to: Optional[str]
    created_at: datetime
    claimed_at: Optional[datetime]
    first_response_at: Optional[datetime]
    first_response_due_at: Optional[datetime]
    resolve_due_at: Optional[datetime]
    resolved_at: Optional[datetime]
    resolved_by: Optional[str]
    callback: bool
    callback_phone: Optional[str]  # masked
    last_customer_message_at: Optional[datetime]
    csat_score: Optional[int]
    rank: float  # higher is served first
    first_response_breached: bool
    resolve_breached: bool


@dataclass(frozen=True)
class QueuePlace:
    """What a queued customer is told: how many are ahead, and roughly how long."""

    escalation_id: int
    status: str
    ahead: int
    expected_wait_minutes: int


@dataclass(frozen=True)
class CannedReply:
    code: str
    title: str
    body: str


@dataclass(frozen=True)
class DeskStats:
    pending: int
    open: int
    first_response_breached: int
    resolve_breached: int
    resolved_today: int
    median_first_response_s: Optional[float]
    csat_avg_today: Optional[float]
    agents_online: int


def _china(value: Optional[datetime]) -> Optional[datetime]:
    return policy.to_china(value)


def _staff_view(s: Staff) -> StaffView:
    return StaffView(id=s.id, username=s.username, display_name=s.display_name, role=s.role,
                     role_label=ROLE_LABELS[s.role], status=s.status, status_label=STAFF_STATUS_LABELS[s.status],
                     max_open=s.max_open, active=s.active, last_seen_at=_china(s.last_seen_at),
                     pii_access=bool(s.pii_access))


def _rank(e: Escalation, tier: Optional[str], now: datetime) -> float:
    waited = max((now - e.created_at).total_seconds() / 60.0, 0.0)
    bonus = QUEUE_BONUS_MINUTES.get(e.priority, 0.0) + QUEUE_BONUS_MINUTES.get(tier or "", 0.0)
    return round(waited + bonus, 3)


def _conversation(e: Escalation, customer: Optional[Customer], now: datetime) -> Conversation:
    tier = customer.tier if customer is not None else None
    active = e.status in ACTIVE_ESCALATION_STATUSES
    first_due, resolve_due = e.first_response_due_at, e.resolve_due_at
    first_breached = first_due is not None and (
        (e.first_response_at or (now if active else None) or now) > first_due)
    if e.first_response_at is None and not active:
        first_breached = first_due is not None and (e.resolved_at or now) > first_due
    resolve_breached = resolve_due is not None and (e.resolved_at or now) > resolve_due
    return Conversation(
        id=e.id, status=e.status, status_label=ESCALATION_STATUS_LABELS[e.status],
        priority=e.priority, priority_label=PRIORITY_LABELS[e.priority],
        reason=e.reason, reason_label=REASON_LABELS.get(e.reason, e.reason),
        channel=e.channel, sender_id=e.sender_id, customer_id=e.customer_id,
        customer_name=customer.name if customer is not None and not customer.deleted else None,
        tier=tier, tier_label=TIER_LABELS.get(tier or ""),
        complaint_ticket=e.complaint.ticket_number if e.complaint is not None else None,
        assigned_to=e.assigned_to, created_at=_china(e.created_at), claimed_at=_china(e.claimed_at),
        first_response_at=_china(e.first_response_at), first_response_due_at=_china(first_due),
        resolve_due_at=_china(resolve_due), resolved_at=_china(e.resolved_at), resolved_by=e.resolved_by,
        callback=bool(e.callback), callback_phone=mask_phone(e.callback_phone) if e.callback_phone else None,
        last_customer_message_at=_china(e.last_customer_message_at), csat_score=e.csat_score,
        rank=_rank(e, tier, now) if active else 0.0,
        first_response_breached=bool(first_breached), resolve_breached=bool(resolve_breached),
    )


def _text(value: str, max_len: int = 2000) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(MSG_TEXT)
    return value.strip()


class ServiceDesk:
    """Queue, staff and timeline operations over the CRM's database.

    Built from a `CRM` (shares its engine and clock), so tests that pin the
    CRM's clock pin the desk's too.
    """

    def __init__(self, crm: "CRM") -> None:  # noqa: F821 - imported lazily below
        self._crm = crm

    # -- plumbing ------------------------------------------------------------

    def _now(self) -> datetime:
        return self._crm._now()

    def _run(self, work: Callable[[Session, datetime], T], write: bool = True) -> T:
        return self._crm.run_unit(work, write=write)

    @staticmethod
    def _event(session: Session, escalation_id: int, kind: str, actor: str, body: Optional[str],
               now: datetime) -> None:
        session.add(EscalationEvent(escalation_id=escalation_id, kind=kind, actor=actor[:64],
                                    body=body, created_at=now))

    @staticmethod
    def _escalation(session: Session, escalation_id: int, lock: bool = False) -> Escalation:
        query = select(Escalation).where(Escalation.id == int(escalation_id)).options(
            selectinload(Escalation.complaint))
        if lock:
            query = query.with_for_update()
        escalation = session.execute(query).scalar_one_or_none()
        if escalation is None:
            raise NotFound(f"escalation {escalation_id}")
        return escalation

    @staticmethod
    def _staff(session: Session, username: str) -> Staff:
        staff = session.execute(select(Staff).where(Staff.username == username)).scalar_one_or_none()
        if staff is None or not staff.active:
            raise InvalidInput(MSG_NO_SUCH_STAFF)
        return staff

    def _customers(self, session: Session, ids: Iterable[Optional[int]]) -> dict[int, Customer]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        rows = session.execute(select(Customer).where(Customer.id.in_(wanted))).scalars()
        return {c.id: c for c in rows}

    def _view(self, session: Session, e: Escalation, now: datetime) -> Conversation:
        customer = self._customers(session, [e.customer_id]).get(e.customer_id or -1)
        return _conversation(e, customer, now)

    # -- staff and sessions --------------------------------------------------

    def create_staff(self, username: str, display_name: str, role: str, password: str,
                     max_open: int = 5) -> StaffView:
        username = validation.label(username, "username", 64)
        if role not in STAFF_ROLES:
            raise InvalidInput(f"角色只能是 {', '.join(STAFF_ROLES)}。")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
            raise InvalidInput(MSG_PASSWORD)
        name = _text(display_name, 64)
        if not 1 <= int(max_open) <= 50:
            raise InvalidInput("同时接待数需在1到50之间。")
        password_hash = hash_password(password)

        def work(session: Session, now: datetime) -> StaffView:
            if session.execute(select(Staff.id).where(Staff.username == username)).first():
                raise InvalidInput("该用户名已存在。")
            staff = Staff(username=username, display_name=name, role=role, password_hash=password_hash,
                          max_open=int(max_open), status="offline", active=True, failed_logins=0,
                          created_at=now)
            session.add(staff)
            session.flush()
            return _staff_view(staff)

        return self._run(work)

    def set_password(self, username: str, password: str) -> None:
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
            raise InvalidInput(MSG_PASSWORD)
        password_hash = hash_password(password)

        def work(session: Session, now: datetime) -> None:
            staff = self._staff(session, username)
            staff.password_hash = password_hash
            staff.failed_logins = 0
            staff.locked_until = None
            session.execute(update(StaffSession).where(StaffSession.staff_id == staff.id)
                            .values(expires_at=now))

        self._run(work)

    def set_active(self, username: str, active: bool) -> None:
        def work(session: Session, now: datetime) -> None:
            staff = session.execute(select(Staff).where(Staff.username == username)).scalar_one_or_none()
            if staff is None:
                raise InvalidInput(MSG_NO_SUCH_STAFF)
            staff.active = bool(active)
            if not active:
                staff.status = "offline"
                session.execute(update(StaffSession).where(StaffSession.staff_id == staff.id)
                                .values(expires_at=now))

        self._run(work)

    def set_pii_access(self, username: str, granted: bool) -> StaffView:
        """Grant or withdraw the right to see customers' personal data unmasked."""
        def work(session: Session, now: datetime) -> StaffView:
            staff = self._staff(session, username)
            staff.pii_access = bool(granted)
            log.info("staff %s pii_access set to %s", staff.id, bool(granted))
            return _staff_view(staff)

        return self._run(work)

    def list_staff(self) -> list[StaffView]:
        return self._run(lambda s, now: [_staff_view(x) for x in
                                         s.execute(select(Staff).order_by(Staff.username)).scalars()],
                         write=False)

    def login(self, username: str, password: str) -> tuple[str, DeskSession]:
        """A new session token (for the cookie) and the session; refuses after repeated failures."""
        if not isinstance(username, str) or not isinstance(password, str) or len(username) > 64:
            raise InvalidInput(MSG_LOGIN)

        def work(session: Session, now: datetime) -> tuple[str, DeskSession] | str:
            staff = session.execute(select(Staff).where(Staff.username == username)).scalar_one_or_none()
            if staff is None or not staff.active:
                password_matches(password, hash_password("x" * MIN_PASSWORD_LEN))  # same time either way
                return MSG_LOGIN
            if staff.locked_until is not None and staff.locked_until > now:
                return MSG_LOCKED
            if not password_matches(password, staff.password_hash):
                staff.failed_logins += 1
                if staff.failed_logins >= LOGIN_MAX_FAILURES:
                    staff.locked_until = now + LOGIN_LOCK
                    staff.failed_logins = 0
                    log.warning("desk login locked for staff %s after repeated failures", staff.id)
                return MSG_LOGIN
            staff.failed_logins = 0
            staff.locked_until = None
            staff.status = "online"
            staff.last_seen_at = now
            token = secrets.token_urlsafe(32)
            row = StaffSession(token_hash=_token_hash(token), staff_id=staff.id,
                               csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                               expires_at=now + SESSION_TTL)
            session.add(row)
            session.flush()
            return token, DeskSession(_staff_view(staff), row.csrf_token, _china(row.expires_at))

        result = self._run(work)
        if isinstance(result, str):  # the failure count above is committed; then refuse
            raise InvalidInput(result)
        return result

    def session(self, token: Optional[str]) -> Optional[DeskSession]:
        """The live session for a cookie token, or None (unknown, expired, staff disabled)."""
        if not token or not isinstance(token, str) or len(token) > 200:
            return None

        def work(session: Session, now: datetime) -> Optional[DeskSession]:
            row = session.execute(select(StaffSession).where(StaffSession.token_hash == _token_hash(token))
                                  ).scalar_one_or_none()
            if row is None or row.expires_at <= now:
                return None
            staff = session.get(Staff, row.staff_id)
            if staff is None or not staff.active:
                return None
            if now - row.last_seen_at > timedelta(seconds=30):  # keep writes rare
                row.last_seen_at = now
                row.expires_at = max(row.expires_at, now + SESSION_TTL)
                staff.last_seen_at = now
            return DeskSession(_staff_view(staff), row.csrf_token, _china(row.expires_at))

        return self._run(work)

    def logout(self, token: str) -> None:
        def work(session: Session, now: datetime) -> None:
            row = session.execute(select(StaffSession).where(StaffSession.token_hash == _token_hash(token))
                                  ).scalar_one_or_none()
            if row is not None:
                row.expires_at = now
                staff = session.get(Staff, row.staff_id)
                if staff is not None:
                    staff.status = "offline"

        self._run(work)

    def set_status(self, username: str, status: str) -> StaffView:
        if status not in STAFF_STATUSES:
            raise InvalidInput("状态只能是在线、离开或离线。")

        def work(session: Session, now: datetime) -> StaffView:
            staff = self._staff(session, username)
            staff.status = status
            staff.last_seen_at = now
            return _staff_view(staff)

        return self._run(work)

    def heartbeat(self, username: str) -> None:
        """The desk page is open: the agent counts as present for auto-assignment."""
        def work(session: Session, now: datetime) -> None:
            session.execute(update(Staff).where(Staff.username == username).values(last_seen_at=now))

        self._run(work)

    # -- the queue -------------------------------------------------------------

    def conversations(self, statuses: tuple[str, ...] = ACTIVE_ESCALATION_STATUSES,
                      assigned_to: Optional[str] = None, limit: int = 200) -> list[Conversation]:
        """Escalations in the given states, the one to serve first first."""
        def work(session: Session, now: datetime) -> list[Conversation]:
            query = select(Escalation).where(Escalation.status.in_(statuses)).options(
                selectinload(Escalation.complaint))
            if assigned_to is not None:
                query = query.where(Escalation.assigned_to == assigned_to)
            if statuses == ("resolved",):
                query = query.order_by(Escalation.resolved_at.desc()).limit(limit)
            rows = list(session.execute(query.limit(5000) if statuses != ("resolved",) else query).scalars())
            customers = self._customers(session, (e.customer_id for e in rows))
            views = [_conversation(e, customers.get(e.customer_id or -1), now) for e in rows]
            if statuses != ("resolved",):
                views.sort(key=lambda v: (v.status != "pending", -v.rank, v.id))
            return views[:limit]

        return self._run(work, write=False)

    def conversation(self, escalation_id: int) -> Conversation:
        return self._run(lambda s, now: self._view(s, self._escalation(s, escalation_id), now), write=False)

    def active_for(self, channel: str, sender_id: str) -> Optional[Conversation]:
        """The pending or open escalation of one conversation, if any."""
        def work(session: Session, now: datetime) -> Optional[Conversation]:
            e = session.execute(
                select(Escalation).where(Escalation.channel == channel, Escalation.sender_id == sender_id,
                                         Escalation.status.in_(ACTIVE_ESCALATION_STATUSES))
                .order_by(Escalation.id.desc()).limit(1)).scalar_one_or_none()
            return self._view(session, e, now) if e is not None else None

        return self._run(work, write=False)

    def timeline(self, escalation_id: int) -> list[TimelineEvent]:
        def work(session: Session, now: datetime) -> list[TimelineEvent]:
            rows = session.execute(select(EscalationEvent).where(
                EscalationEvent.escalation_id == int(escalation_id)).order_by(EscalationEvent.id)).scalars()
            return [TimelineEvent(r.id, r.escalation_id, r.kind, r.actor, r.body, _china(r.created_at))
                    for r in rows]

        return self._run(work, write=False)

    def events_since(self, last_id: int, limit: int = 500) -> list[TimelineEvent]:
        """Timeline events of all escalations after ``last_id`` (the desk's live feed)."""
        def work(session: Session, now: datetime) -> list[TimelineEvent]:
            rows = session.execute(select(EscalationEvent).where(EscalationEvent.id > int(last_id))
                                   .order_by(EscalationEvent.id).limit(limit)).scalars()
            return [TimelineEvent(r.id, r.escalation_id, r.kind, r.actor, r.body, _china(r.created_at))
                    for r in rows]

        return self._run(work, write=False)

    def last_event_id(self) -> int:
        return self._run(lambda s, now: s.execute(select(func.max(EscalationEvent.id))).scalar() or 0,
                         write=False)

    def queue_place(self, escalation_id: int) -> QueuePlace:
        """How many pending chats will be served before this one, and a rough wait.

        The wait is (chats ahead + 1) × the median recent handling time ÷
        agents present (at least one), so it grows with the queue and shrinks
        as agents log in; it is a promise to the customer, so it rounds up.
        """
        def work(session: Session, now: datetime) -> QueuePlace:
            target = self._escalation(session, escalation_id)
            if target.status != "pending":
                return QueuePlace(target.id, target.status, 0, 0)
            pending = list(session.execute(select(Escalation).where(Escalation.status == "pending")).scalars())
            customers = self._customers(session, (e.customer_id for e in pending))
            mine = _rank(target, getattr(customers.get(target.customer_id or -1), "tier", None), now)
            ahead = sum(1 for e in pending if e.id != target.id and (
                (r := _rank(e, getattr(customers.get(e.customer_id or -1), "tier", None), now)) > mine
                or (r == mine and e.id < target.id)))
            agents = self._present_agents(session, now)
            minutes = (ahead + 1) * self._handle_minutes(session, now) / max(len(agents), 1)
            return QueuePlace(target.id, "pending", ahead, max(1, math.ceil(minutes)))

        return self._run(work, write=False)

    @staticmethod
    def _present_agents(session: Session, now: datetime) -> list[Staff]:
        return list(session.execute(select(Staff).where(
            Staff.active.is_(True), Staff.status == "online", Staff.last_seen_at >= now - PRESENCE_TIMEOUT,
        )).scalars())

    @staticmethod
    def _handle_minutes(session: Session, now: datetime) -> float:
        rows = session.execute(select(Escalation.claimed_at, Escalation.resolved_at).where(
            Escalation.status == "resolved", Escalation.claimed_at.is_not(None),
            Escalation.resolved_at >= now - timedelta(days=7)).order_by(Escalation.resolved_at.desc()).limit(50)
        ).all()
        spans = [(r.resolved_at - r.claimed_at).total_seconds() / 60 for r in rows if r.resolved_at > r.claimed_at]
        return min(max(median(spans), 1.0), 60.0) if spans else DEFAULT_HANDLE_MINUTES

    # -- what agents do --------------------------------------------------------

    def claim(self, escalation_id: int, username: str) -> Conversation:
        """An agent takes a queued chat. Claiming one's own open chat again is harmless."""
        def work(session: Session, now: datetime) -> Conversation:
            staff = self._staff(session, username)
            e = self._escalation(session, escalation_id, lock=True)
            if e.status == "open" and e.assigned_to == staff.username:
                return self._view(session, e, now)
            if e.status == "resolved":
                raise InvalidInput(MSG_RESOLVED)
            if e.status != "pending":
                raise InvalidInput(MSG_NOT_PENDING)
            self._take(session, e, staff, now)
            self._event(session, e.id, "claimed", staff.username, None, now)
            return self._view(session, e, now)

        return self._run(work)

    @staticmethod
    def _take(session: Session, e: Escalation, staff: Staff, now: datetime) -> None:
        # A conditional update, so two agents claiming at once cannot both win
        # (SQLite ignores FOR UPDATE).
        won = session.execute(update(Escalation).where(Escalation.id == e.id, Escalation.status == "pending")
                              .values(status="open", assigned_to=staff.username, claimed_at=now, updated_at=now)
                              .execution_options(synchronize_session=False)).rowcount
        if won != 1:
            raise InvalidInput(MSG_NOT_PENDING)
        session.refresh(e)

    def assign(self, escalation_id: int, to_username: str, by: str) -> Conversation:
        """A manager (or auto-assignment, ``by='system'``) gives a queued chat to an agent."""
        def work(session: Session, now: datetime) -> Conversation:
            staff = self._staff(session, to_username)
            e = self._escalation(session, escalation_id, lock=True)
            if e.status != "pending":
                raise InvalidInput(MSG_NOT_PENDING if e.status == "open" else MSG_RESOLVED)
            self._take(session, e, staff, now)
            self._event(session, e.id, "assigned", by, staff.username, now)
            return self._view(session, e, now)

        return self._run(work)

    def transfer(self, escalation_id: int, by: str, to_username: str, note: Optional[str] = None,
                 manager: bool = False) -> Conversation:
        """Hand an open chat to another agent; only its agent (or a manager) may."""
        remark = _text(note, 500) if note else None

        def work(session: Session, now: datetime) -> Conversation:
            target = self._staff(session, to_username)
            e = self._escalation(session, escalation_id, lock=True)
            if e.status != "open":
                raise InvalidInput(MSG_RESOLVED if e.status == "resolved" else "该会话尚未被接入，请直接分配。")
            if e.assigned_to != by and not manager:
                raise InvalidInput(MSG_NOT_YOURS)
            previous = e.assigned_to
            e.assigned_to = target.username
            e.updated_at = now
            body = f"{previous} → {target.username}" + (f"：{remark}" if remark else "")
            self._event(session, e.id, "transferred", by, body, now)
            return self._view(session, e, now)

        return self._run(work)

    def authorise_reply(self, escalation_id: int, username: str) -> Conversation:
        """The chat, if ``username`` may write to its customer now (else InvalidInput)."""
        def work(session: Session, now: datetime) -> Conversation:
            e = self._escalation(session, escalation_id)
            if e.status == "resolved":
                raise InvalidInput(MSG_RESOLVED)
            if e.status != "open" or e.assigned_to != username:
                raise InvalidInput(MSG_NOT_YOURS)
            return self._view(session, e, now)

        return self._run(work, write=False)

    def record_agent_message(self, escalation_id: int, username: str, text: str) -> Conversation:
        """After an agent's reply went out: the timeline entry and the first-response clock."""
        body = _text(text)

        def work(session: Session, now: datetime) -> Conversation:
            e = self._escalation(session, escalation_id)
            if e.first_response_at is None:
                e.first_response_at = now
            e.updated_at = now
            self._event(session, e.id, "agent_message", username, body, now)
            return self._view(session, e, now)

        return self._run(work)

    def add_note(self, escalation_id: int, username: str, text: str) -> TimelineEvent:
        """An internal note: staff read it, the customer never does."""
        body = _text(text)

        def work(session: Session, now: datetime) -> TimelineEvent:
            e = self._escalation(session, escalation_id)
            self._staff(session, username)
            row = EscalationEvent(escalation_id=e.id, kind="note", actor=username, body=body, created_at=now)
            session.add(row)
            session.flush()
            return TimelineEvent(row.id, e.id, "note", username, body, _china(now))

        return self._run(work)

    def resolve(self, escalation_id: int, username: str, summary: Optional[str] = None,
                manager: bool = False) -> Conversation:
        """Close the chat and hand it back to the bot (the desk then asks for CSAT)."""
        remark = _text(summary, 500) if summary else None

        def work(session: Session, now: datetime) -> Conversation:
            e = self._escalation(session, escalation_id, lock=True)
            if e.status == "resolved":
                raise InvalidInput(MSG_RESOLVED)
            if e.assigned_to != username and not manager:
                raise InvalidInput(MSG_NOT_YOURS)
            e.status = "resolved"
            e.resolved_at = now
            e.resolved_by = username
            e.updated_at = now
            self._event(session, e.id, "resolved", username, remark, now)
            return self._view(session, e, now)

        return self._run(work)

    def customer_wrote(self, channel: str, sender_id: str,
                       at: Optional[datetime] = None) -> tuple[Optional[Conversation], bool]:
        """A customer message arrived in a handed-off chat.

        Returns the chat and whether to tell the customer their place in the
        queue again (queued, and not told within `QUEUE_NOTICE_EVERY`), or
        ``(None, False)`` when the message is not news to the desk.
        ``at``: when the customer wrote.  The message that asked for a person
        was written before the escalation existed: it already got its answer
        and is in the transcript, so it must not reach the agent a second time
        as a live message when the event feed reads it late.
        """
        def work(session: Session, now: datetime) -> tuple[Optional[Conversation], bool]:
            e = session.execute(
                select(Escalation).where(Escalation.channel == channel, Escalation.sender_id == sender_id,
                                         Escalation.status.in_(ACTIVE_ESCALATION_STATUSES))
                .order_by(Escalation.id.desc()).limit(1)).scalar_one_or_none()
            if e is None:
                return None, False
            if at is not None and policy.utc_naive(at) <= e.created_at:
                return None, False
            e.last_customer_message_at = now
            notice = e.status == "pending" and not e.callback and (
                e.last_notice_at is None or now - e.last_notice_at >= QUEUE_NOTICE_EVERY)
            if notice:
                e.last_notice_at = now
                self._event(session, e.id, "queue_notice", "system", None, now)
            return self._view(session, e, now), notice

        return self._run(work)

    def auto_assign(self) -> list[Conversation]:
        """Give queued chats, best first, to present agents with room (least busy first)."""
        def work(session: Session, now: datetime) -> list[Conversation]:
            agents = self._present_agents(session, now)
            if not agents:
                return []
            load = dict(session.execute(select(Escalation.assigned_to, func.count()).where(
                Escalation.status == "open").group_by(Escalation.assigned_to)).all())
            pending = list(session.execute(select(Escalation).where(
                Escalation.status == "pending", Escalation.callback.is_(False))).scalars())
            customers = self._customers(session, (e.customer_id for e in pending))
            pending.sort(key=lambda e: (-_rank(e, getattr(customers.get(e.customer_id or -1), "tier", None), now),
                                        e.id))
            assigned = []
            for e in pending:
                free = [a for a in agents if load.get(a.username, 0) < a.max_open]
                if not free:
                    break
                agent = min(free, key=lambda a: (load.get(a.username, 0), a.id))
                try:
                    self._take(session, e, agent, now)
                except InvalidInput:
                    continue
                load[agent.username] = load.get(agent.username, 0) + 1
                self._event(session, e.id, "assigned", "system", agent.username, now)
                assigned.append(_conversation(e, customers.get(e.customer_id or -1), now))
            return assigned

        return self._run(work)

    # -- canned replies --------------------------------------------------------

    def canned_replies(self) -> list[CannedReply]:
        return self._run(lambda s, now: [CannedReply(c.code, c.title, c.body) for c in s.execute(
            select(CannedResponse).order_by(CannedResponse.code)).scalars()], write=False)

    def save_canned_reply(self, code: str, title: str, body: str) -> CannedReply:
        code = _text(code, 32)
        if any(ch.isspace() for ch in code):
            raise InvalidInput("快捷码不能包含空格。")
        title, body = _text(title, 64), _text(body)

        def work(session: Session, now: datetime) -> CannedReply:
            row = session.execute(select(CannedResponse).where(CannedResponse.code == code)).scalar_one_or_none()
            if row is None:
                row = CannedResponse(code=code, title=title, body=body, updated_at=now)
                session.add(row)
            else:
                row.title, row.body, row.updated_at = title, body, now
            return CannedReply(code, title, body)

        return self._run(work)

    # -- for managers ----------------------------------------------------------

    def stats(self) -> DeskStats:
        """Today's desk at a glance (China calendar day)."""
        def work(session: Session, now: datetime) -> DeskStats:
            active = self.conversations()
            local_midnight = policy.to_china(now).replace(hour=0, minute=0, second=0, microsecond=0)
            since = policy.utc_naive(local_midnight)
            resolved = list(session.execute(select(Escalation).where(
                Escalation.status == "resolved", Escalation.resolved_at >= since)).scalars())
            firsts = [(e.first_response_at - e.created_at).total_seconds() for e in resolved
                      if e.first_response_at is not None]
            scores = [e.csat_score for e in resolved if e.csat_score is not None]
            return DeskStats(
                pending=sum(1 for c in active if c.status == "pending"),
                open=sum(1 for c in active if c.status == "open"),
                first_response_breached=sum(1 for c in active if c.first_response_breached),
                resolve_breached=sum(1 for c in active if c.resolve_breached),
                resolved_today=len(resolved),
                median_first_response_s=median(firsts) if firsts else None,
                csat_avg_today=round(sum(scores) / len(scores), 2) if scores else None,
                agents_online=len(self._present_agents(session, now)),
            )

        return self._run(work, write=False)


__all__ = [
    "ServiceDesk", "StaffView", "DeskSession", "Conversation", "TimelineEvent", "QueuePlace",
    "CannedReply", "DeskStats", "desk_open", "next_opening", "sla_due", "hours_label",
    "hash_password", "password_matches", "CHINA_TZ",
]
