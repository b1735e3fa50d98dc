"""Process each WeChat callback once, however often WeChat retries it.

WeChat re-sends a callback (same MsgId) up to three times when it has no
answer within five seconds.  The first delivery owns the turn; a retry waits
for the first delivery's decision and answers the same thing, so the bot
neither runs twice nor speaks twice.

The store is in memory and bounded (entries expire after `ttl_s`, and the
oldest go first beyond `max_entries`).  It is per process: with several Rasa
processes behind a load balancer, a retry that lands on another process is
processed again.  Rasa's lock store and the CRM's idempotency keys (made from
the message id, which is the MsgId here) keep that from writing twice, but the
customer would get the answer twice.  So with KEFU_REDIS_URL set (the
scale-out topology), `RedisTurnStore` shares the claim and the answer through
Redis: the first delivery anywhere owns the turn, and a retry on another
process polls Redis for that turn's answer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

log = logging.getLogger("kefu.wechat.dedup")


@dataclass
class Turn:
    """One callback's processing, shared by its retries."""

    created: float
    #: What to answer WeChat: the plaintext reply XML, or "success".
    answer: "asyncio.Future[str]" = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    retries: int = 0


class TurnStore:
    def __init__(self, ttl_s: float = 600.0, max_entries: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._turns: "OrderedDict[str, Turn]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._turns)

    def claim(self, key: str) -> tuple[Turn, bool]:
        """The turn for `key` and whether this caller is the first (and must process it)."""
        now = self._clock()
        self._expire(now)
        turn: Optional[Turn] = self._turns.get(key)
        if turn is not None:
            turn.retries += 1
            return turn, False
        turn = Turn(created=now)
        self._turns[key] = turn
        while len(self._turns) > self.max_entries:
            self._turns.popitem(last=False)
        return turn, True

    async def aclaim(self, key: str) -> tuple[Turn, bool]:
        """`claim` with the signature the shared store needs."""
        return self.claim(key)

    def _expire(self, now: float) -> None:
        while self._turns:
            oldest = next(iter(self._turns.values()))
            if now - oldest.created <= self.ttl_s:
                break
            self._turns.popitem(last=False)


class RedisTurnStore:
    """A TurnStore shared by every process through Redis (same `aclaim` contract).

    Redis holds, per key, ``pending`` from the first claim until the owner's
    answer replaces it; both expire after `ttl_s`.  Claims of one process
    still share one in-memory `Turn` (no polling for a retry that lands where
    the first delivery is).  If Redis cannot be reached the claim falls back to
    this process alone: a duplicate answer is better than no answer.
    """

    PENDING = "pending"

    def __init__(self, client: Any, ttl_s: float = 600.0, poll_s: float = 0.1,
                 key_prefix: str = "kefu:wechat:turn:") -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.prefix = key_prefix
        self.local = TurnStore(ttl_s=ttl_s)
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self.local)

    async def aclaim(self, key: str) -> tuple[Turn, bool]:
        turn, first_here = self.local.claim(key)
        if not first_here:
            return turn, False
        redis_key = self.prefix + key
        try:
            first = bool(await self.client.set(redis_key, self.PENDING, nx=True, ex=int(self.ttl_s)))
        except Exception as exc:  # Redis down: this process decides alone
            log.warning("wechat dedup: Redis unavailable (%s); deduplicating in this process only",
                        type(exc).__name__)
            return turn, True
        self._track(self._publish(redis_key, turn) if first else self._follow(redis_key, turn))
        return turn, first

    def _track(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, redis_key: str, turn: Turn) -> None:
        """Store the owner's answer for retries elsewhere."""
        answer = await asyncio.shield(turn.answer)
        try:
            await self.client.set(redis_key, answer, xx=True, ex=int(self.ttl_s))
        except Exception as exc:
            log.warning("wechat dedup: could not share an answer (%s)", type(exc).__name__)

    async def _follow(self, redis_key: str, turn: Turn) -> None:
        """Settle this process's copy of the turn with the owner's answer once it is in Redis."""
        deadline = time.monotonic() + self.ttl_s
        while not turn.answer.done() and time.monotonic() < deadline:
            try:
                value = await self.client.get(redis_key)
            except Exception:
                value = None
            if value is None:
                return  # expired or lost: the retry's waiter times out and answers "success"
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text != self.PENDING:
                turn.answer.set_result(text)
                return
            await asyncio.sleep(self.poll_s)


def turn_store(ttl_s: float, redis_url: Optional[str] = None) -> "TurnStore | RedisTurnStore":
    """The shared store when KEFU_REDIS_URL (or `redis_url`) is set, else the in-memory one."""
    url = redis_url if redis_url is not None else os.environ.get("KEFU_REDIS_URL", "")
    if not url:
        return TurnStore(ttl_s=ttl_s)
    import redis.asyncio

    return RedisTurnStore(redis.asyncio.Redis.from_url(url, socket_timeout=2.0), ttl_s=ttl_s)
