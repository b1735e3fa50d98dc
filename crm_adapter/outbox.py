"""The outbox: remote directory writes that survive the remote CRM being down.

    python -m crm_adapter.outbox status            # counts, oldest waiting, dead letters
    python -m crm_adapter.outbox drain [--limit N] # deliver what is due, in order
    python -m crm_adapter.outbox requeue ID        # give a dead letter another round

Why: the company CRM is another company's server on the internet. When it is
slow or down a customer's complaint must still be taken — with the local
ticket number Kefu already gave — and reach the CRM later, once, in the
order it happened. So every write to a remote directory is first stored in
the ``outbox`` table of the CRM's own database (same SQLite/PostgreSQL),
then delivered:

* `Outbox.submit` validates the write (bad input: `InvalidInput`, nothing
  stored), stores it, and delivers it at once when nothing older is
  waiting. The caller gets `Accepted`: ``synced`` with the directory's
  answer, or not synced and stored — an honest "accepted, will sync".
  A refusal by the remote CRM on that first attempt is the caller's to
  hear (`InvalidInput`, `NotFound`), and the entry is dropped.
* `Outbox.drain` delivers pending entries strictly oldest first. The head
  entry is claimed with a lease by one conditional UPDATE, so concurrent
  drains never deliver the same entry at the same time; a drain that finds
  the head claimed by someone else stops. The idempotency key goes with
  every attempt, so a delivery whose answer was lost (timeout after the CRM
  stored it) is recognised by the CRM rather than repeated.
* An unreachable CRM ends the drain (no point hammering it) and schedules
  the entry with exponential back-off; a refusal (bad data, unknown
  customer) or ``max_attempts`` failures move it to ``dead`` with its last
  error, for an operator to read and `requeue`.

Strict order means one stuck entry holds the ones behind it back until it
is delivered or dead; that is the price of never updating a case before it
was created.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping, Optional

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import config, policy, validation
from . import directory as d
from .errors import CRMError, CRMUnavailable, IdempotencyConflict, InvalidInput, NotFound
from .masking import guard_logger, mask_text
from .models import OutboxEntry
from .views import ComplaintView, decode, encode

log = guard_logger(__name__)

OPERATIONS = ("create_case", "update_profile", "update_case_status", "add_note")
DEFAULT_MAX_ATTEMPTS = 10
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
#: Longer than one delivery can take (the HTTP retry budget plus timeouts).
LEASE = timedelta(minutes=2)
_ERROR_MAX = 500


@dataclass(frozen=True)
class Accepted:
    """The answer to `Outbox.submit`.

    ``synced``: the company CRM has the write and ``result`` is its answer
    (a view, or None for writes without one). Not synced: the write is
    stored locally and will be delivered by `Outbox.drain`.
    """

    entry_id: int
    synced: bool
    result: Any = None


@dataclass(frozen=True)
class DrainReport:
    delivered: int
    failed: int  # attempts that failed and will be retried
    dead: int
    pending: int  # still waiting after this drain
    stopped: str  # "empty", "limit", "unavailable", "waiting" (back-off), "busy" (another drain)


def _payload(operation: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a write with the directory's own rules and make it JSON; bad input stores nothing."""
    if operation == "create_case":
        complaint = d.check_complaint(values.get("complaint"))
        customer_id = values.get("customer_id")
        return {
            "customer_id": None if customer_id is None else d.customer_number(customer_id),
            "complaint": encode(complaint),
            "sender_id": validation.label(values.get("sender_id"), "sender_id"),
            "contact_phone": validation.phone(values["contact_phone"]) if values.get("contact_phone") else None,
        }
    if operation == "update_profile":
        field, value = d.profile_value(values.get("field"), values.get("value"), d.china_today())
        return {
            "customer_id": d.customer_number(values.get("customer_id")),
            "field": field,
            "value": value.isoformat() if field == "birthday" else value,
        }
    if operation == "update_case_status":
        return {
            "ticket_number": validation.ticket_number(values.get("ticket_number")),
            "status": d.case_status(values.get("status")),
        }
    if operation == "add_note":
        kind, summary, channel, sender = d.note_fields(
            values.get("kind"), values.get("summary"), values.get("channel"), values.get("sender_id")
        )
        return {
            "customer_id": d.customer_number(values.get("customer_id")),
            "kind": kind, "summary": summary, "channel": channel, "sender_id": sender,
        }
    raise InvalidInput("系统参数不正确（operation），请稍后再试。")


def _deliver(directory: d.CustomerDirectory, operation: str, payload: Mapping[str, Any], key: str) -> Any:
    if operation == "create_case":
        complaint = decode(payload["complaint"])
        assert isinstance(complaint, ComplaintView)
        return directory.create_case(
            payload["customer_id"], complaint, key,
            sender_id=payload["sender_id"], contact_phone=payload.get("contact_phone"),
        )
    if operation == "update_profile":
        return directory.update_profile(payload["customer_id"], payload["field"], payload["value"], key)
    if operation == "update_case_status":
        return directory.update_case_status(payload["ticket_number"], payload["status"], key)
    if operation == "add_note":
        return directory.add_note(
            payload["customer_id"], payload["kind"], payload["summary"], key,
            channel=payload["channel"], sender_id=payload["sender_id"],
        )
    raise ValueError(f"unknown outbox operation {operation!r}")


def backoff_delay(attempts: int, base_delay: timedelta, max_delay: timedelta, rng: random.Random) -> timedelta:
    """Exponential back-off with jitter: base x 2^(attempts-1), capped, times U(0.5, 1).

    Shared with the care scheduler's retries (crm_adapter.care).
    """
    ceiling = min(max_delay, base_delay * 2 ** max(attempts - 1, 0))
    return ceiling * rng.uniform(0.5, 1.0)


def describe_error(exc: BaseException) -> str:
    """An error for a ``last_error`` column: type and message, PII masked, bounded."""
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    """An error for the ``last_error`` column: type and message, PII masked, bounded."""
    text = exc.message_zh if isinstance(exc, InvalidInput) else str(exc)
    return mask_text(f"{type(exc).__name__}: {text}")[:_ERROR_MAX]


class Outbox:
    """Durable, ordered, at-most-once-visible delivery of writes to a `CustomerDirectory`."""

    def __init__(
        self,
        engine: Engine,
        directory: d.CustomerDirectory,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        base_delay: timedelta = BASE_DELAY,
        max_delay: timedelta = MAX_DELAY,
        lease: timedelta = LEASE,
        clock: Optional[Callable[[], datetime]] = None,
        rng: Optional[random.Random] = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.engine = engine
        self.directory = directory
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = lease
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._rng = rng or random.Random()

    def _now(self) -> datetime:
        return policy.utc_naive(self._clock())

    def create_schema(self) -> None:
        """Create the outbox table if missing (Alembic migration 0004 does the same)."""
        OutboxEntry.__table__.create(self.engine, checkfirst=True)

    def _session(self) -> Session:
        return Session(self.engine, future=True, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite, see crm_adapter.config)."""
        with self._session() as session, session.begin():
            session.connection(execution_options=config.WRITE_OPTIONS)
            yield session

    # -- writing ----------------------------------------------------------

    def submit(
        self, operation: str, values: Mapping[str, Any], idempotency_key: str, *, raise_refusals: bool = True
    ) -> Accepted:
        """Store the write, deliver it now if nothing older waits; see the module doc.

        ``raise_refusals=False`` is for writes already kept elsewhere (the CRM's
        own tables): a refusal on the first attempt then leaves a dead letter
        for operators instead of an error for the caller.
        """
        key = validation.label(idempotency_key, "idempotency_key", 255)
        payload = _payload(operation, values)
        try:
            entry_id = self._store(operation, payload, key)
        except SQLAlchemyError as exc:
            raise CRMUnavailable(f"outbox unavailable ({type(exc).__name__})") from exc
        try:
            self._drain(limit=1, only_id=entry_id, first_refusal_raises=raise_refusals)
        except (InvalidInput, NotFound):
            self._forget(entry_id)
            raise
        except SQLAlchemyError as exc:
            log.warning("outbox delivery bookkeeping failed: %s", type(exc).__name__)
        try:
            with self._session() as session:
                entry = session.get(OutboxEntry, entry_id)
                if entry is not None and entry.status == "done":
                    return Accepted(entry_id, True, decode(entry.result))
        except SQLAlchemyError as exc:  # stored; only its outcome could not be read back
            log.warning("outbox entry %s stored, outcome unreadable: %s", entry_id, type(exc).__name__)
        return Accepted(entry_id, False, None)

    def _store(self, operation: str, payload: dict[str, Any], key: str) -> int:
        """The entry's id; an existing entry for the same key is reused (a retried message)."""
        now = self._now()
        for _ in range(2):
            try:
                with self._tx() as session:
                    existing = session.execute(
                        select(OutboxEntry).where(OutboxEntry.idempotency_key == key)
                    ).scalar_one_or_none()
                    if existing is not None:
                        if existing.operation != operation:
                            raise IdempotencyConflict(existing.operation, operation)
                        return int(existing.id)
                    entry = OutboxEntry(
                        idempotency_key=key, backend=self.directory.name, operation=operation,
                        payload=payload, status="pending", attempts=0, next_attempt_at=now,
                        created_at=now, updated_at=now,
                    )
                    session.add(entry)
                    session.flush()
                    return int(entry.id)
            except IntegrityError:
                continue  # the same key arrived concurrently: the next round finds that one
        raise CRMUnavailable("outbox could not store the write")

    def _forget(self, entry_id: int) -> None:
        """Drop an entry the CRM refused on its first, synchronous attempt (the caller is told)."""
        with self._tx() as session:
            entry = session.get(OutboxEntry, entry_id)
            if entry is not None and entry.status != "done":
                session.delete(entry)

    # -- delivering -------------------------------------------------------

    def drain(self, limit: Optional[int] = None) -> DrainReport:
        """Deliver due entries oldest first until empty, ``limit``, an outage or back-off."""
        return self._drain(limit=limit)

    def _claim(self, now: datetime, only_id: Optional[int]) -> tuple[Optional[OutboxEntry], str]:
        with self._tx() as session:
            head = session.execute(
                select(OutboxEntry).where(OutboxEntry.status == "pending").order_by(OutboxEntry.id).limit(1)
            ).scalar_one_or_none()
            if head is None:
                return None, "empty"
            if only_id is not None and head.id != only_id:
                return None, "waiting"  # older writes go first; drain delivers them
            if head.claimed_until is not None and head.claimed_until > now:
                return None, "busy"
            if head.next_attempt_at > now:
                return None, "waiting"
            token = uuid.uuid4().hex
            claimed = session.execute(
                update(OutboxEntry)
                .where(
                    OutboxEntry.id == head.id,
                    OutboxEntry.status == "pending",
                    (OutboxEntry.claimed_until.is_(None)) | (OutboxEntry.claimed_until <= now),
                )
                .values(
                    claimed_until=now + self.lease, claim_token=token,
                    attempts=OutboxEntry.attempts + 1, updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                return None, "busy"
        with self._session() as session:
            entry = session.get(OutboxEntry, head.id)
        return entry, ""

    def _finish(self, entry: OutboxEntry, **values: Any) -> bool:
        """Record the outcome if we still hold the lease (else another drain owns the entry)."""
        with self._tx() as session:
            done = session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == entry.id, OutboxEntry.claim_token == entry.claim_token)
                .values(claimed_until=None, claim_token=None, updated_at=self._now(), **values)
                .execution_options(synchronize_session=False)
            ).rowcount
        return done == 1

    def _backoff(self, attempts: int) -> timedelta:
        return backoff_delay(attempts, self.base_delay, self.max_delay, self._rng)

    def _drain(
        self, *, limit: Optional[int], only_id: Optional[int] = None, first_refusal_raises: bool = False
    ) -> DrainReport:
        delivered = failed = dead = 0
        stopped = "limit"
        while limit is None or delivered + failed + dead < limit:
            now = self._now()
            entry, why = self._claim(now, only_id)
            if entry is None:
                stopped = why
                break
            try:
                result = _deliver(self.directory, entry.operation, entry.payload, entry.idempotency_key)
            except CRMUnavailable as exc:
                give_up = entry.attempts >= self.max_attempts
                self._finish(
                    entry, last_error=_describe(exc), status="dead" if give_up else "pending",
                    next_attempt_at=now + self._backoff(entry.attempts),
                )
                log.warning("outbox entry %s (%s) attempt %d failed: %s%s", entry.id, entry.operation,
                            entry.attempts, type(exc).__name__, "; dead" if give_up else "")
                dead, failed = (dead + 1, failed) if give_up else (dead, failed + 1)
                stopped = "unavailable"
                break
            except (InvalidInput, NotFound) as exc:
                if first_refusal_raises:
                    self._finish(entry, last_error=_describe(exc))
                    raise
                self._finish(entry, status="dead", last_error=_describe(exc))
                log.warning("outbox entry %s (%s) refused by the %s CRM: %s; dead",
                            entry.id, entry.operation, self.directory.name, type(exc).__name__)
                dead += 1
                continue
            except CRMError as exc:  # any other adapter error is treated as a refusal
                self._finish(entry, status="dead", last_error=_describe(exc))
                dead += 1
                continue
            self._finish(entry, status="done", result=encode(result), done_at=now, last_error=None)
            log.info("outbox entry %s (%s) delivered after %d attempt(s)", entry.id, entry.operation,
                     entry.attempts)
            delivered += 1
        return DrainReport(delivered, failed, dead, self.counts().get("pending", 0), stopped)

    # -- operators --------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._session() as session:
            rows = session.execute(
                select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
            ).all()
        return {status: int(n) for status, n in rows}

    def status(self) -> dict[str, Any]:
        """What an operator needs: counts, the oldest waiting entry, and the dead letters."""
        with self._session() as session:
            oldest = session.execute(
                select(OutboxEntry).where(OutboxEntry.status == "pending").order_by(OutboxEntry.id).limit(1)
            ).scalar_one_or_none()
            dead = session.execute(
                select(OutboxEntry).where(OutboxEntry.status == "dead").order_by(OutboxEntry.id)
            ).scalars().all()
            return {
                "counts": self.counts(),
                "oldest_pending": None if oldest is None else {
                    "id": oldest.id, "operation": oldest.operation, "attempts": oldest.attempts,
                    "created_at": oldest.created_at.isoformat(), "next_attempt_at": oldest.next_attempt_at.isoformat(),
                    "last_error": oldest.last_error,
                },
                "dead": [
                    {"id": e.id, "operation": e.operation, "attempts": e.attempts, "last_error": e.last_error}
                    for e in dead
                ],
            }

    def requeue(self, entry_id: int) -> bool:
        """Give a dead entry a fresh set of attempts (after fixing what made it fail)."""
        with self._tx() as session:
            changed = session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == entry_id, OutboxEntry.status == "dead")
                .values(status="pending", attempts=0, next_attempt_at=self._now(), updated_at=self._now())
                .execution_options(synchronize_session=False)
            ).rowcount
        return changed == 1


def outbox_from_env(env: Optional[Mapping[str, str]] = None) -> Outbox:
    """The outbox in ``KEFU_CRM_URL``'s database, delivering to ``KEFU_CRM_DIRECTORY``."""
    env = os.environ if env is None else env
    from .service import CRM

    crm = CRM(config.crm_url(env))
    directory = d.directory_from_env(crm, env)
    raw = (env.get("KEFU_OUTBOX_MAX_ATTEMPTS") or "").strip()
    return Outbox(crm.engine, directory, max_attempts=int(raw) if raw else DEFAULT_MAX_ATTEMPTS)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_adapter.outbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    drain_cmd = commands.add_parser("drain", help="deliver due entries, oldest first")
    drain_cmd.add_argument("--limit", type=int, default=None, help="at most this many entries")
    commands.add_parser("status", help="counts, oldest pending entry, dead letters (JSON)")
    requeue_cmd = commands.add_parser("requeue", help="give a dead entry another round")
    requeue_cmd.add_argument("entry_id", type=int)
    args = parser.parse_args(argv)
    try:
        outbox = outbox_from_env()
        outbox.create_schema()
        if args.command == "drain":
            report = outbox.drain(limit=args.limit)
            print(json.dumps(report.__dict__, ensure_ascii=False))
            return 0 if report.stopped in ("empty", "limit", "waiting", "busy") else 3
        if args.command == "status":
            print(json.dumps(outbox.status(), ensure_ascii=False, indent=2))
            return 0
        ok = outbox.requeue(args.entry_id)
        print("requeued" if ok else f"entry {args.entry_id} is not a dead letter")
        return 0 if ok else 1
    except (ValueError, CRMError, SQLAlchemyError) as exc:
        print(f"outbox: {type(exc).__name__}: {mask_text(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Accepted", "DrainReport", "OPERATIONS", "Outbox", "outbox_from_env"]
