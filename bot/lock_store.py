"""Conversation locks that stay held while the server holding them is alive.

Rasa processes one customer's messages one at a time with a ticket lock,
but a ticket expires ``TICKET_LOCK_LIFETIME`` seconds (60 by default, 20
in our scale-out topology) after it was *issued*, that is after the
message arrived, however long it then waited or ran.  On a busy server a
message that queued behind a slow one loses its ticket mid-turn, and the
customer's next message then runs at the same time: both load the same
tracker, and the one saved last drops the other's events.  A soak on an
overloaded machine showed exactly that: a WeChat customer's message
missing from the transcript, two turns' events interleaved.  A waiting
message whose own ticket expired fails outright (``LockError``).

Here every ticket is renewed while its message waits or is processed, so
the lifetime means what it was meant to mean: how long the lock of a
server that *died* keeps blocking that customer.  A turn that hangs is
renewed for at most ``KEFU_LOCK_MAX_HOLD_S`` seconds (default 600) from the
moment it got the lock, so one stuck message cannot block a customer for
ever, and the messages queued behind it are served once it lapses.

The Redis store also does each read-modify-write of a lock in a
WATCH/MULTI transaction: Rasa's own get-then-set lets two servers that
issue tickets for one customer at the same moment overwrite each other's
ticket, and both then process.

Configured in ``endpoints.yml``: ``type: ${KEFU_LOCK_STORE}``, which the runtime
sets to ``bot.lock_store.RenewedInMemoryLockStore`` (one Rasa process) or, when
``KEFU_REDIS_URL`` is set, to ``bot.lock_store.RenewedRedisLockStore`` with that
URL (several Sanic workers, ``KEFU_RASA_WORKERS``); the scale-out ``endpoints.yml``
names the Redis store with the keys of Rasa's ``type: redis``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Callable, Optional, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, InMemoryLockStore, LockError, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from bot.settings import number_from_env

logger = logging.getLogger(__name__)

MAX_HOLD_ENV = "KEFU_LOCK_MAX_HOLD_S"
DEFAULT_MAX_HOLD_S = 600.0

T = TypeVar("T")


def max_hold_seconds() -> float:
    """How long one message may keep its customer locked (``KEFU_LOCK_MAX_HOLD_S``)."""
    value = number_from_env(MAX_HOLD_ENV, DEFAULT_MAX_HOLD_S, float)
    return value if value > 0 else DEFAULT_MAX_HOLD_S


def _extend(lock: TicketLock, number: int, lifetime: float) -> bool:
    """Push ticket ``number``'s expiry to ``lifetime`` from now; False if it is gone."""
    for ticket in lock.tickets:
        if ticket.number == number:
            ticket.expires = max(ticket.expires, time.time() + lifetime)
            return True
    return False


class RenewedTicketsMixin(LockStore):
    """Keeps a message's ticket alive from issue to release (see the module docstring)."""

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncGenerator[TicketLock, None]:
        ticket = self.issue_ticket(conversation_id, lock_lifetime)
        acquired = asyncio.Event()
        renewer = asyncio.create_task(self._keep_renewed(conversation_id, ticket, lock_lifetime, acquired))
        try:
            lock = await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
            acquired.set()
            yield lock
        finally:
            renewer.cancel()
            self.cleanup(conversation_id, ticket)

    async def _keep_renewed(self, conversation_id: str, ticket: int, lifetime: float, acquired: asyncio.Event) -> None:
        """Renew while the message waits (the one ahead is bounded itself) and, once it
        holds the lock, for at most ``max_hold_seconds()`` counted from that moment.

        Counting the bound from the ticket's issue instead would let a message
        that queued behind a hung one lose its ticket at the same moment as
        the hung one, and fail with ``LockError`` instead of being served.
        """
        every = max(lifetime / 3.0, 0.05)
        max_hold = max_hold_seconds()
        give_up: Optional[float] = None
        while True:
            await asyncio.sleep(every)
            if give_up is None and acquired.is_set():
                give_up = time.monotonic() + max_hold
            if give_up is not None and time.monotonic() >= give_up:
                logger.warning("a message has held its conversation lock for over %.0f s; no longer renewing it",
                               max_hold)
                return
            try:
                if not self.renew_ticket(conversation_id, ticket, lifetime):
                    return  # released or already expired: nothing left to keep alive
            except Exception:  # noqa: BLE001 - a store blip; the next round may succeed
                logger.warning("could not renew a conversation lock ticket", exc_info=True)

    def renew_ticket(self, conversation_id: str, ticket: int, lifetime: float) -> bool:
        """Extend ``ticket``'s expiry; False when the lock or the ticket no longer exists."""
        lock = self.get_lock(conversation_id)
        if lock is None or not _extend(lock, ticket, lifetime):
            return False
        self.save_lock(lock)
        return True


class RenewedInMemoryLockStore(RenewedTicketsMixin, InMemoryLockStore):
    """Rasa's in-memory lock store (one server) with renewed tickets.

    Every change happens between two awaits on the one event loop, so the
    read-modify-writes here need no further protection.

    It refuses to start under ``SANIC_WORKERS`` > 1: Rasa allows several
    workers for any lock store configured by class name, but these locks
    live in one process, so two workers could run one customer's messages
    at once and lose events.  Several workers need the Redis store.
    """

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None) -> None:
        from rasa.constants import ENV_SANIC_WORKERS

        workers = os.environ.get(ENV_SANIC_WORKERS, "1")
        if workers.strip().isdigit() and int(workers) > 1:  # what Rasa would run several workers for
            raise ValueError(
                f"{ENV_SANIC_WORKERS}={workers}: the in-memory conversation lock works within one process "
                f"only; run one worker, or use bot.lock_store.RenewedRedisLockStore (see README, Scale-out)")
        super().__init__()


def _redis_address(url: str) -> dict[str, Any]:
    """Rasa's ``url`` key is a host name; a ``redis://`` URL (``KEFU_REDIS_URL``, shared with
    the WeChat retry store) gives host, port, db and password at once."""
    if "://" not in url:
        return {"host": url}
    from redis.connection import parse_url

    address = parse_url(url)
    if address.pop("connection_class", None) is not None:
        address["use_ssl"] = True  # rediss://
    return address


class RenewedRedisLockStore(RenewedTicketsMixin, RedisLockStore):
    """Rasa's Redis lock store (several servers) with renewed tickets and atomic updates.

    Takes the keys of Rasa's ``type: redis`` lock store (``url``, ``port``,
    ``db``, ``password``, ``key_prefix``, ...).  A lock's key expires shortly
    after its last ticket would, so a dead server leaves nothing behind.
    """

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {**_redis_address(endpoint_config.url or "localhost"), **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)

    def _transact(self, conversation_id: str, change: Callable[[Optional[TicketLock]], tuple[Optional[TicketLock], T]]) -> T:
        """Apply ``change`` to the stored lock atomically: it gets the lock (or None)
        and returns (the lock to store, or None to delete it; its result)."""
        key = self.key_prefix + conversation_id

        def attempt(pipe: Any) -> T:
            raw = pipe.get(key)
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            new, result = change(lock)
            pipe.multi()
            if new is None or not new.tickets:
                pipe.delete(key)
            else:
                ttl = max(t.expires for t in new.tickets) - time.time() + 1.0
                pipe.set(key, new.dumps(), px=max(int(ttl * 1000), 1))
            return result

        return self.red.transaction(attempt, key, value_from_callable=True)  # type: ignore[no-any-return]

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def change(lock: Optional[TicketLock]) -> tuple[TicketLock, int]:
            lock = lock or TicketLock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._transact(conversation_id, change)
        except Exception as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def update_lock(self, conversation_id: str) -> None:
        def change(lock: Optional[TicketLock]) -> tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._transact(conversation_id, change)

    def renew_ticket(self, conversation_id: str, ticket: int, lifetime: float) -> bool:
        def change(lock: Optional[TicketLock]) -> tuple[Optional[TicketLock], bool]:
            return lock, lock is not None and _extend(lock, ticket, lifetime)

        return self._transact(conversation_id, change)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Give up ``ticket_number``; the lock goes when nobody else holds a ticket."""
        def change(lock: Optional[TicketLock]) -> tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._transact(conversation_id, change)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.cleanup(conversation_id, ticket_number)
