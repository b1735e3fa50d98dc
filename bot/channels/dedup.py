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
customer may get the answer twice; a shared store (Redis) would fix it.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional


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

    def _expire(self, now: float) -> None:
        while self._turns:
            oldest = next(iter(self._turns.values()))
            if now - oldest.created <= self.ttl_s:
                break
            self._turns.popitem(last=False)
