"""Proactive care (客户关怀): the send log and the rules every care message obeys.

The scheduler (bot/scheduler) decides *when* a campaign runs and *how* a
message travels; this module decides *whether* a customer may get it, and
keeps the record that makes "exactly once" true:

* `Care.plan` turns a campaign's audience (crm_adapter.care_audience) into
  messages to queue: live customers only, the channel they prefer (or the one
  they last chatted on), consent for that channel and the campaign's purpose
  (marketing needs an opt-in; service needs no refusal), a frequency cap on
  marketing messages per rolling week, and a deterministic A/B variant.
* `Care.enqueue` writes them to ``care_sends`` *before* anything is sent,
  with a unique (campaign, customer, occasion) key: a second run, a restart
  or a second scheduler inserts nothing new.
* `Care.claim` leases due rows to one sender (token + ``claimed_until``, as
  crm_adapter.outbox does); a sender that dies gives them back when the
  lease lapses. `Care.route` re-checks consent (an 「退订」 since selection
  stops the message) and quiet hours (the customer's own and the care
  window, in their time zone) just before sending.
* `Care.finish` / `Care.fail` record the outcome; failures back off
  exponentially (crm_adapter.outbox.backoff_delay) and end ``dead``, visible
  to managers (`dead_letters`, `requeue`).
* Messages for customers who cannot be reached now are ``deferred`` and said
  the next time the customer opens a chat (`take_deferred`); they lapse at
  ``expires_at``.
* `metrics` reports per campaign and variant: selected, sent, delivered,
  replied, opted out, converted.

States: queued -> sending -> sent -> delivered; deferred; failed -> dead;
skipped (reason: no_consent, customer_gone, expired, cancelled).
"""
from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import config, consent, convert, policy, validation
from .care_audience import Candidate, select_audience
from .care_rules import (  # noqa: F401 (re-exported: callers import them from here)
    BATCH,
    CAPPED_STATUSES,
    CHAT_CONSENT_CHANNEL,
    MSG_CHANNEL,
    MSG_SEND_ID,
    PUSH_CHANNELS,
    CampaignRules,
    CareMessage,
    CareSettings,
    Planned,
    PlanSummary,
    Route,
    SendTask,
    next_allowed,
    variant_for,
)
from .errors import InvalidInput, NotFound
from .masking import guard_logger
from .models import (
    CONTACT_CHANNELS,
    CareCampaignState,
    CareChannelPreference,
    CareConversation,
    CareSend,
    ChannelIdentity,
    Complaint,
    Consent,
    ContactPreference,
    Customer,
    Order,
)
from .outbox import backoff_delay, describe_error
from .retention import RetentionOffer
from .views import CouponView

if TYPE_CHECKING:  # pragma: no cover
    from .service import CRM

log = guard_logger(__name__)

def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Care:
    """The care send log over one CRM's database (``crm.care``)."""

    def __init__(self, crm: "CRM", settings: Optional[CareSettings] = None) -> None:
        self.crm = crm
        self.settings = settings or CareSettings.from_env()
        self._rng = random.Random()

    def _now(self) -> datetime:
        return self.crm._now()

    def _session(self) -> Session:
        return Session(self.crm.engine, future=True, expire_on_commit=False)

    # -- selection ---------------------------------------------------------

    def plan(self, rules: CampaignRules, day: date, summary: Optional[PlanSummary] = None,
             now: Optional[datetime] = None) -> Iterator[list[Planned]]:
        """The campaign's messages for China date ``day``, in batches, after the rules.

        Reads only; ``summary`` (if given) is filled with counts and skip reasons.
        Already-logged occasions are left out ("already"), so a re-run plans nothing twice.
        """
        consent.purpose(rules.purpose)
        summary = summary if summary is not None else PlanSummary()
        now = now or self._now()
        cap_since = now - timedelta(days=7)
        cap_used: dict[int, int] = {}
        with self._session() as session:
            candidates = list(select_audience(session, rules.audience, day, rules.params))
            summary.candidates += len(candidates)
            for chunk in _chunks(candidates):
                yield self._plan_chunk(session, rules, chunk, summary, cap_since, cap_used)

    def _plan_chunk(self, session: Session, rules: CampaignRules, chunk: Sequence[Candidate],
                    summary: PlanSummary, cap_since: datetime, cap_used: dict[int, int]) -> list[Planned]:
        ids = sorted({c.customer_id for c in chunk})
        customers = {
            row.id: row for row in session.execute(
                select(Customer.id, Customer.name, Customer.member_level, Customer.points, Customer.tier)
                .where(Customer.id.in_(ids), Customer.deleted.is_(False))
            )
        }
        channels = self._channels(session, ids)
        decisions: dict[int, list[consent.Decision]] = defaultdict(list)
        for row in session.execute(
            select(Consent).where(Consent.customer_id.in_(ids), Consent.purpose == rules.purpose)
        ).scalars():
            decisions[row.customer_id].append(
                consent.Decision(row.channel, row.purpose, row.granted, row.created_at, row.id))
        logged = {
            (cid, occasion) for cid, occasion in session.execute(
                select(CareSend.customer_id, CareSend.occasion)
                .where(CareSend.campaign == rules.name, CareSend.customer_id.in_(ids))
            )
        }
        if rules.purpose == "marketing":
            for cid, n in session.execute(
                select(CareSend.customer_id, func.count())
                .where(CareSend.customer_id.in_([i for i in ids if i not in cap_used]),
                       CareSend.purpose == "marketing", CareSend.status.in_(CAPPED_STATUSES),
                       CareSend.created_at >= cap_since)
                .group_by(CareSend.customer_id)
            ):
                cap_used[cid] = int(n)
        out: list[Planned] = []
        for candidate in chunk:
            cid = candidate.customer_id
            customer = customers.get(cid)
            if customer is None:
                summary.skipped["customer_gone"] += 1
                continue
            if (cid, candidate.occasion) in logged:
                summary.skipped["already"] += 1
                continue
            channel = channels.get(cid)
            decision = consent.current(decisions.get(cid, []), channel or "web", rules.purpose)
            if not consent.is_granted(decision, rules.purpose):
                summary.skipped["no_consent"] += 1
                continue
            if rules.purpose == "marketing":
                used = cap_used.get(cid, 0)
                if used >= self.settings.weekly_cap:
                    summary.skipped["capped"] += 1
                    continue
                cap_used[cid] = used + 1
            context = {
                "name": customer.name, "member_level": customer.member_level,
                "points": int(customer.points or 0), "tier": customer.tier, **candidate.facts,
            }
            out.append(Planned(cid, candidate.occasion, variant_for(rules.name, cid, rules.variants),
                               channel, context))
            logged.add((cid, candidate.occasion))
        summary.planned += len(out)
        return out

    @staticmethod
    def _channels(session: Session, ids: Sequence[int]) -> dict[int, Optional[str]]:
        """Preferred channel, else the push channel of the most recent identity, else None."""
        result: dict[int, Optional[str]] = {}
        latest: dict[int, tuple[int, str]] = {}
        for cid, ident, channel in session.execute(
            select(ChannelIdentity.customer_id, ChannelIdentity.id, ChannelIdentity.channel)
            .where(ChannelIdentity.customer_id.in_(ids))
        ):
            if channel in PUSH_CHANNELS and (cid not in latest or ident > latest[cid][0]):
                latest[cid] = (ident, channel)
        for cid, (_, channel) in latest.items():
            result[cid] = channel
        for cid, channel in session.execute(
            select(CareChannelPreference.customer_id, CareChannelPreference.channel)
            .where(CareChannelPreference.customer_id.in_(ids))
        ):
            result[cid] = channel
        return result

    def enqueue(self, rules: CampaignRules, planned: Sequence[Planned], now: Optional[datetime] = None) -> int:
        """Write planned messages as ``queued`` (insert-or-ignore on the unique key); the
        number of rows this call created."""
        if not planned:
            return 0
        now = now or self._now()
        expires = now + timedelta(days=rules.valid_days)
        rows = [{
            "campaign": rules.name, "customer_id": p.customer_id, "occasion": p.occasion,
            "variant": p.variant, "purpose": rules.purpose, "status": "queued", "channel": p.channel,
            "context": p.context, "attempts": 0, "next_attempt_at": now, "expires_at": expires,
            "created_at": now, "updated_at": now,
        } for p in planned]
        dialect = self.crm.engine.dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CareSend.__table__)
        statement = insert.on_conflict_do_nothing(index_elements=["campaign", "customer_id", "occasion"])
        before = self._count_since(rules.name, now)
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            for chunk in _chunks(rows):
                session.execute(statement, list(chunk))
        return self._count_since(rules.name, now) - before

    def _count_since(self, campaign: str, now: datetime) -> int:
        with self._session() as session:
            return int(session.execute(
                select(func.count()).select_from(CareSend)
                .where(CareSend.campaign == campaign, CareSend.created_at >= now)
            ).scalar_one())

    # -- campaign state ------------------------------------------------------

    def state(self, campaign: str) -> Optional[CareCampaignState]:
        with self._session() as session:
            return session.get(CareCampaignState, campaign)

    def states(self) -> dict[str, CareCampaignState]:
        with self._session() as session:
            return {s.campaign: s for s in session.execute(select(CareCampaignState)).scalars()}

    def set_paused(self, campaign: str, paused: bool, by: str) -> None:
        name = validation.label(campaign, "campaign", 48)
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            row = session.get(CareCampaignState, name)
            if row is None:
                row = CareCampaignState(campaign=name, paused=paused, updated_at=self._now(),
                                        updated_by=validation.label(by, "by", 64))
                session.add(row)
            row.paused, row.updated_at, row.updated_by = paused, self._now(), validation.label(by, "by", 64)
        log.info("care campaign %s %s by %s", name, "paused" if paused else "resumed", by)

    def record_run(self, campaign: str, day: date, summary: PlanSummary, queued: int) -> None:
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            row = session.get(CareCampaignState, campaign)
            if row is None:
                row = CareCampaignState(campaign=campaign, paused=False, updated_at=self._now(),
                                        updated_by="scheduler")
                session.add(row)
            row.last_run_at, row.last_run_day, row.last_selected = self._now(), day, summary.planned
            row.last_summary = {**summary.as_dict(), "queued": queued}

    # -- delivery ------------------------------------------------------------

    def claim(self, limit: int = 100, now: Optional[datetime] = None) -> list[SendTask]:
        """Lease up to ``limit`` due rows to this caller (see the module docstring)."""
        now = now or self._now()
        token = uuid.uuid4().hex
        due = (
            (CareSend.status.in_(("queued", "failed")) & (CareSend.next_attempt_at <= now))
            | ((CareSend.status == "sending") & (CareSend.claimed_until < now))
        )
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            ids = list(session.execute(
                select(CareSend.id).where(due).order_by(CareSend.next_attempt_at, CareSend.id).limit(limit)
            ).scalars())
            if not ids:
                return []
            session.execute(
                update(CareSend).where(CareSend.id.in_(ids), due)
                .values(status="sending", claim_token=token, claimed_until=now + self.settings.lease,
                        updated_at=now)
                .execution_options(synchronize_session=False)
            )
        with self._session() as session:
            rows = session.execute(
                select(CareSend).where(CareSend.claim_token == token).order_by(CareSend.id)
            ).scalars().all()
            return [SendTask(r.id, r.campaign, r.customer_id, r.occasion, r.variant, r.purpose,
                             dict(r.context or {}), r.text, r.coupon_code, r.attempts, token) for r in rows]

    def route(self, task: SendTask, now: Optional[datetime] = None) -> Route:
        """Where this message goes now; consent and quiet hours are checked again here."""
        now = now or self._now()
        with self._session() as session:
            row = session.get(CareSend, task.id)
            customer = session.execute(
                select(Customer).where(Customer.id == task.customer_id, Customer.deleted.is_(False))
            ).scalar_one_or_none()
            if customer is None:
                return Route("skip", reason="customer_gone")
            if row is not None and row.expires_at <= now:
                return Route("skip", reason="expired")
            channel = self._channels(session, [customer.id]).get(customer.id)
            rows = list(session.execute(
                select(Consent).where(Consent.customer_id == customer.id, Consent.purpose == task.purpose)
            ).scalars())
            decisions = [consent.Decision(r.channel, r.purpose, r.granted, r.created_at, r.id) for r in rows]
            if not consent.is_granted(consent.current(decisions, channel or "web", task.purpose), task.purpose):
                return Route("skip", channel=channel, reason="no_consent")
            preference = session.get(ContactPreference, customer.id)
            own = (preference.quiet_start, preference.quiet_end) if preference else consent.DEFAULT_QUIET_HOURS
            later = next_allowed(now, customer.timezone or consent.DEFAULT_TIMEZONE,
                                 [own, (self.settings.quiet_start, self.settings.quiet_end)])
            if later is not None:
                return Route("later", channel=channel, reason="quiet_hours", retry_at=later)
            if channel is None:
                return Route("defer", reason="no_push_channel")
            address: Optional[str] = None
            if channel == "wechat":
                address = session.execute(
                    select(ChannelIdentity.external_id)
                    .where(ChannelIdentity.customer_id == customer.id, ChannelIdentity.channel == "wechat")
                    .order_by(ChannelIdentity.id.desc()).limit(1)
                ).scalar_one_or_none()
            elif channel == "web":
                address = session.execute(
                    select(CareConversation.conversation_id)
                    .where(CareConversation.customer_id == customer.id, CareConversation.channel == "web")
                ).scalar_one_or_none()
            elif channel == "email":
                address = customer.email
            elif channel == "sms":
                address = customer.phone
            if not address:
                return Route("defer", channel=channel, reason="no_address")
            return Route("send", channel=channel, address=address)

    def _finish(self, task: SendTask, **values: Any) -> bool:
        now = self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            done = session.execute(
                update(CareSend).where(CareSend.id == task.id, CareSend.claim_token == task.token)
                .values(claim_token=None, claimed_until=None, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            ).rowcount
        return done == 1

    def set_text(self, task: SendTask, text: str, coupon_code: Optional[str] = None) -> bool:
        """Store the rendered text (kept: the bot says exactly this, even at the next chat)."""
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            return session.execute(
                update(CareSend).where(CareSend.id == task.id, CareSend.claim_token == task.token)
                .values(text=text, coupon_code=coupon_code, updated_at=self._now())
                .execution_options(synchronize_session=False)
            ).rowcount == 1

    def sent(self, task: SendTask, channel: str, conversation_id: Optional[str] = None,
             *, delivered: bool = False, text: Optional[str] = None, coupon_code: Optional[str] = None) -> bool:
        """The channel accepted the message. Delivered already (the bot said it) stays delivered.

        ``text``/``coupon_code``: store the rendered text in the same commit (e-mail and
        SMS need not store it before sending; a pushed chat message must).
        """
        now = self._now()
        status = "delivered" if delivered else case((CareSend.status == "delivered", "delivered"), else_="sent")
        values: dict[str, Any] = {"status": status, "channel": channel, "sent_at": now, "last_error": None,
                                  "reason": None}
        if text is not None:
            values.update(text=text, coupon_code=coupon_code)
        if conversation_id is not None:
            values["conversation_id"] = conversation_id
        if delivered:
            values["delivered_at"] = now
        return self._finish(task, **values)

    def defer(self, task: SendTask, reason: str, channel: Optional[str] = None, *,
              text: Optional[str] = None, coupon_code: Optional[str] = None) -> bool:
        values: dict[str, Any] = {"status": "deferred", "reason": reason[:32], "channel": channel}
        if text is not None:
            values.update(text=text, coupon_code=coupon_code)
        return self._finish(task, **values)

    def skip(self, task: SendTask, reason: str) -> bool:
        return self._finish(task, status="skipped", reason=reason[:32])

    def later(self, task: SendTask, retry_at: datetime, reason: str = "quiet_hours") -> bool:
        return self._finish(task, status="queued", reason=reason[:32], next_attempt_at=retry_at)

    def fail(self, task: SendTask, error: BaseException, *, permanent: bool = False) -> str:
        """Record a failed attempt: ``failed`` with back-off, or ``dead`` after max_attempts
        (at once when ``permanent``: retrying a refused address cannot help)."""
        attempts = task.attempts + 1
        dead = permanent or attempts >= self.settings.max_attempts
        retry = self._now() + backoff_delay(attempts, self.settings.retry_base, self.settings.retry_max, self._rng)
        status = "dead" if dead else "failed"
        self._finish(task, status=status, attempts=attempts, last_error=describe_error(error),
                     next_attempt_at=retry)
        log.warning("care send %s attempt %d failed: %s%s", task.id, attempts, type(error).__name__,
                    "; dead" if dead else "")
        return status

    def expire_deferred(self, now: Optional[datetime] = None) -> int:
        """Deferred messages past their validity are skipped ("expired"), not said late."""
        now = now or self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            return session.execute(
                update(CareSend).where(CareSend.status == "deferred", CareSend.expires_at <= now)
                .values(status="skipped", reason="expired", updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount or 0

    def issue_coupon(self, task: SendTask, offer: RetentionOffer) -> Optional[CouponView]:
        """The campaign's coupon for this message, once per send (keyed by the send id);
        None when the customer already got this coupon title within ``offer.every_days``."""
        from .service import CRM

        def work(session: Session, now: datetime) -> Optional[CouponView]:
            coupon = CRM._grant_coupon_once(session, task.customer_id, offer, "CC", now)
            if coupon is None:
                return None
            log.info("care coupon %s for customer %s (send %s)", coupon.code, task.customer_id, task.id)
            return convert.coupon_view(coupon, now)

        return self.crm._write("care_coupon", f"care:{task.id}:coupon", work, customer_id=task.customer_id)

    # -- the Rasa side: saying a message, replies, follow-ups -----------------

    def mark_delivered(self, send_id: Any, conversation_id: Optional[str] = None) -> Optional[CareMessage]:
        """Called by the bot as it says a pushed message. None when it was already said
        (a retried trigger) or never meant to be said, so the bot says nothing twice."""
        sid = _send_id(send_id)
        now = self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            changed = session.execute(
                update(CareSend)
                .where(CareSend.id == sid, CareSend.status.in_(("sending", "sent", "deferred")),
                       CareSend.delivered_at.is_(None), CareSend.text.isnot(None))
                .values(status="delivered", delivered_at=now, updated_at=now,
                        conversation_id=conversation_id[:128] if conversation_id else CareSend.conversation_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                return None
            row = session.get(CareSend, sid)
            return CareMessage(row.id, row.campaign, row.text or "", dict(row.context or {}))

    def take_deferred(self, customer_id: int, chat_channel: str, conversation_id: str,
                      limit: int = 3) -> list[CareMessage]:
        """Deferred messages to say now that the customer opened a chat: marked delivered here,
        oldest first, at most ``limit``; consent is checked for the chat's channel."""
        cid = int(customer_id)
        now = self._now()
        contact = CHAT_CONSENT_CHANNEL.get(chat_channel, "web")
        self.expire_deferred(now)
        out: list[CareMessage] = []
        with self._session() as session:
            rows = list(session.execute(
                select(CareSend).where(CareSend.customer_id == cid, CareSend.status == "deferred",
                                       CareSend.text.isnot(None))
                .order_by(CareSend.created_at, CareSend.id).limit(limit)
            ).scalars())
            decisions = [consent.Decision(r.channel, r.purpose, r.granted, r.created_at, r.id)
                         for r in session.execute(select(Consent).where(Consent.customer_id == cid)).scalars()]
        for row in rows:
            if not consent.is_granted(consent.current(decisions, contact, row.purpose), row.purpose):
                continue  # stays deferred: another channel may still carry it
            message = self.mark_delivered(row.id, conversation_id)
            if message is not None:
                out.append(message)
        return out

    def note_conversation(self, customer_id: int, channel: str, conversation_id: str) -> None:
        """The customer is chatting here now: remember the conversation (for web pushes) and
        count it as a reply to care messages delivered within ``reply_hours``."""
        cid = int(customer_id)
        channel = validation.label(channel, "channel", 32)
        conversation = validation.label(conversation_id, "conversation_id", 128)
        now = self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            row = session.get(CareConversation, (cid, channel))
            if row is None:
                session.add(CareConversation(customer_id=cid, channel=channel, conversation_id=conversation,
                                             seen_at=now))
            else:
                row.conversation_id, row.seen_at = conversation, now
            self._mark_replied(session, cid, now)

    def note_reply(self, customer_id: int) -> int:
        """The customer wrote (after a care message in this chat): mark recent deliveries replied."""
        now = self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            return self._mark_replied(session, int(customer_id), now)

    def note_reply_to(self, send_id: Any) -> bool:
        """The customer wrote right after this message was said in their chat."""
        sid = _send_id(send_id)
        now = self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            return session.execute(
                update(CareSend).where(
                    CareSend.id == sid, CareSend.replied_at.is_(None), CareSend.delivered_at.isnot(None),
                    CareSend.delivered_at >= now - timedelta(hours=self.settings.reply_hours),
                ).values(replied_at=now).execution_options(synchronize_session=False)
            ).rowcount == 1

    def _mark_replied(self, session: Session, cid: int, now: datetime) -> int:
        return session.execute(
            update(CareSend).where(
                CareSend.customer_id == cid, CareSend.replied_at.is_(None),
                CareSend.delivered_at.isnot(None), CareSend.delivered_at < now,
                CareSend.delivered_at >= now - timedelta(hours=self.settings.reply_hours),
            ).values(replied_at=now).execution_options(synchronize_session=False)
        ).rowcount or 0

    def record_followup(self, send_id: Any, conversation_id: str, solved: bool, idempotency_key: str) -> Optional[str]:
        """The customer's answer to a complaint follow-up; "not solved" reopens the complaint.

        Only an answer from the conversation the follow-up was said in counts
        (the send's ``conversation_id``), so nobody answers for someone else.
        Returns the complaint's ticket number, or None when this is not such
        a follow-up. Idempotent per key.
        """
        sid = _send_id(send_id)
        conversation = validation.label(conversation_id, "conversation_id", 128)

        def work(session: Session, now: datetime) -> Optional[str]:
            row = session.get(CareSend, sid)
            if row is None or row.conversation_id != conversation:
                return None
            ticket = (row.context or {}).get("ticket_number")
            row.outcome = "solved" if solved else "unsolved"
            row.replied_at = row.replied_at or now
            if not ticket:
                return None
            complaint = session.execute(
                select(Complaint).where(Complaint.ticket_number == ticket, Complaint.customer_id == row.customer_id)
                .with_for_update()
            ).scalar_one_or_none()
            if complaint is None:
                return None
            if not solved and complaint.status in ("resolved", "closed"):
                complaint.status, complaint.resolved_at = "open", None
                complaint.sla_due_at = policy.sla_due(complaint.severity, now)
                log.info("complaint %s reopened after care follow-up %s", ticket, sid)
            return str(ticket)

        return self.crm._write("care_followup", idempotency_key, work)

    def set_channel_preference(self, customer_id: int, channel: str) -> None:
        cid = int(customer_id)
        name = str(channel or "").strip().lower()
        if name not in CONTACT_CHANNELS:
            raise InvalidInput(MSG_CHANNEL)
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            if session.execute(select(Customer.id).where(Customer.id == cid, Customer.deleted.is_(False))
                               ).scalar_one_or_none() is None:
                raise NotFound(f"customer {cid}")
            row = session.get(CareChannelPreference, cid)
            if row is None:
                session.add(CareChannelPreference(customer_id=cid, channel=name, updated_at=self._now()))
            else:
                row.channel, row.updated_at = name, self._now()

    # -- managers --------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[CareSend]:
        with self._session() as session:
            return list(session.execute(
                select(CareSend).where(CareSend.status == "dead").order_by(CareSend.id).limit(limit)
            ).scalars())

    def requeue(self, send_id: Any) -> bool:
        """Give a dead (or failed) message another round of attempts, now."""
        sid = _send_id(send_id)
        now = self._now()
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            return session.execute(
                update(CareSend).where(CareSend.id == sid, CareSend.status.in_(("dead", "failed")))
                .values(status="queued", attempts=0, next_attempt_at=now, updated_at=now, last_error=None)
                .execution_options(synchronize_session=False)
            ).rowcount == 1

    def counts(self, campaign: Optional[str] = None) -> dict[str, int]:
        with self._session() as session:
            query = select(CareSend.status, func.count()).group_by(CareSend.status)
            if campaign:
                query = query.where(CareSend.campaign == campaign)
            return {status: int(n) for status, n in session.execute(query)}

    def get(self, send_id: Any) -> Optional[CareSend]:
        with self._session() as session:
            return session.get(CareSend, _send_id(send_id))

    def metrics(self, campaign: Optional[str] = None) -> list[dict[str, Any]]:
        """Per campaign and variant: selected (queued in the log), sent, delivered, replied
        (within ``reply_hours`` of delivery), opted out (a marketing refusal after it
        reached them), converted (an order within ``convert_days`` of it reaching them)."""
        reply = timedelta(hours=self.settings.reply_hours)
        convert = timedelta(days=self.settings.convert_days)
        stats: dict[tuple[str, str], Counter] = defaultdict(Counter)
        with self._session() as session:
            query = select(CareSend.campaign, CareSend.variant, CareSend.customer_id, CareSend.status,
                           CareSend.sent_at, CareSend.delivered_at, CareSend.replied_at)
            if campaign:
                query = query.where(CareSend.campaign == campaign)
            rows = session.execute(query).all()
            reached_ids = sorted({r.customer_id for r in rows if r.delivered_at or r.sent_at})
            refusals: dict[int, list[datetime]] = defaultdict(list)
            orders: dict[int, list[datetime]] = defaultdict(list)
            for chunk in _chunks(reached_ids):
                for cid, at in session.execute(
                    select(Consent.customer_id, Consent.created_at).where(
                        Consent.customer_id.in_(chunk), Consent.purpose == "marketing",
                        Consent.granted.is_(False))
                ):
                    refusals[cid].append(at)
                for cid, at in session.execute(
                    select(Order.customer_id, Order.created_at).where(Order.customer_id.in_(chunk))
                ):
                    orders[cid].append(at)
        for r in rows:
            c = stats[(r.campaign, r.variant)]
            if r.status != "skipped":
                c["selected"] += 1
            else:
                c["skipped"] += 1
            if r.sent_at or r.delivered_at:
                c["sent"] += 1
            reached = r.delivered_at
            if reached:
                c["delivered"] += 1
                if r.replied_at and reached <= r.replied_at <= reached + reply:
                    c["replied"] += 1
            since = r.delivered_at or r.sent_at
            if since:
                if any(at >= since for at in refusals.get(r.customer_id, ())):
                    c["opted_out"] += 1
                if any(since <= at <= since + convert for at in orders.get(r.customer_id, ())):
                    c["converted"] += 1
        keys = ("selected", "sent", "delivered", "replied", "opted_out", "converted", "skipped")
        return [{"campaign": name, "variant": variant, **{k: stats[(name, variant)][k] for k in keys}}
                for name, variant in sorted(stats)]

    # -- privacy ------------------------------------------------------------

    @staticmethod
    def erase(session: Session, customer_id: int, redacted: str) -> int:
        """Erasure (crm_adapter.privacy): blank texts and contexts, forget conversations and
        preferences; pending messages are cancelled. Returns rows touched."""
        touched = session.execute(
            update(CareSend).where(CareSend.customer_id == customer_id)
            .values(text=redacted, context={}, conversation_id=None)
            .execution_options(synchronize_session=False)
        ).rowcount or 0
        session.execute(
            update(CareSend).where(CareSend.customer_id == customer_id,
                                   CareSend.status.in_(("queued", "sending", "deferred", "failed")))
            .values(status="skipped", reason="cancelled", claim_token=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        touched += session.execute(
            delete(CareConversation).where(CareConversation.customer_id == customer_id)
        ).rowcount or 0
        session.execute(delete(CareChannelPreference).where(CareChannelPreference.customer_id == customer_id))
        return touched


def _send_id(value: Any) -> int:
    return validation.database_id(value, MSG_SEND_ID)


def _guard_public_methods() -> None:
    """Database failures leave `Care` as `CRMUnavailable`, like every `CRM` method
    (crm_adapter.errors: callers handle only the adapter's own errors)."""
    from .service import _guarded

    for name, member in list(vars(Care).items()):
        if not name.startswith("_") and callable(member) and not isinstance(member, staticmethod):
            setattr(Care, name, _guarded(member))


_guard_public_methods()
