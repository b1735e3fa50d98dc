"""Late WeChat answers that could not be delivered, kept for the customer's next message.

Why: an answer that misses WeChat's five-second window can only go out by the
customer-service API (客服消息).  An account without that API (subscription
accounts without 认证, or no appid/secret configured) has no way to send it
at all, and with the API a send can still fail for good: WeChat busy past the
retries, the 48-hour window closed (45015), the token refused twice.  Until
now such an answer was logged and lost, so the customer who asked "where is
my order" never read the answer.  Held here, it goes out first in the reply
to whatever the customer writes next: a passive reply needs no API and no
window, and the answer arrives in the order it was given.

Bounded like `ButtonMemory`: at most `max_openids` customers (least recently
held dropped first), `max_texts` texts each (oldest dropped), and nothing
older than `ttl_s` (an answer days old would confuse more than help).  In
memory, per Rasa process: a restart, or a next message routed to another
server in a scale-out, loses what was held — the log line says so.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

DEFAULT_TTL_S = 24 * 3600.0


class LateMailbox:
    def __init__(self, max_openids: int = 20_000, max_texts: int = 5, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_openids, self.max_texts, self.ttl_s, self._clock = max_openids, max_texts, ttl_s, clock
        self._held: "OrderedDict[str, list[tuple[float, str]]]" = OrderedDict()

    def hold(self, openid: str, texts: list[str]) -> int:
        """Keep `texts` (in order, after anything already held); how many are held now."""
        texts = [t for t in texts if t]
        if not texts:
            return len(self._held.get(openid, ()))
        now = self._clock()
        kept = [*self._fresh(openid, now), *((now, t) for t in texts)][-self.max_texts:]
        self._held[openid] = kept
        self._held.move_to_end(openid)
        while len(self._held) > self.max_openids:
            self._held.popitem(last=False)
        return len(kept)

    def take(self, openid: str) -> list[str]:
        """What is held for `openid`, oldest first; empty afterwards."""
        fresh = self._fresh(openid, self._clock())
        self._held.pop(openid, None)
        return [text for _, text in fresh]

    def _fresh(self, openid: str, now: float) -> list[tuple[float, str]]:
        return [(at, text) for at, text in self._held.get(openid, ()) if now - at <= self.ttl_s]

    def __len__(self) -> int:
        return len(self._held)
