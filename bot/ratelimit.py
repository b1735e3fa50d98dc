"""Per-sender rate limiting where customer messages enter, and for desk logins.

Why: one sender (a script, a stuck client, an attacker rotating nothing but
their patience) could otherwise make the single Rasa process run the model
as fast as it can send, starving every other customer.  A token bucket lets
a person type in bursts (a few quick lines, then a pause) while capping the
sustained rate; the defaults (20 messages a minute, bursts of 10) are far
above what anyone typing reaches.

The buckets live in this process's memory (`MemoryTokenBuckets`).  With
several Rasa processes each keeps its own, so a sender spread over N
processes gets up to N times the rate; a shared backend (Redis) only has to
implement `RateLimiter` — the channels never see more than that interface.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Protocol

#: What a customer who sends too fast reads instead of the bot's answer.
TOO_FAST_REPLY = "您发送得太快了，请稍后再试"

DEFAULT_PER_MINUTE = 20.0
DEFAULT_BURST = 10.0
#: Failed desk logins per client address: 20 at once, then one every 30 s.
DEFAULT_LOGIN_FAILURES_PER_MINUTE = 2.0
DEFAULT_LOGIN_FAILURES_BURST = 20.0


class RateLimiter(Protocol):
    """What the channels and the desk need from a limiter (in memory here; Redis later)."""

    def take(self, key: str) -> bool:
        """Spend one token of `key`'s bucket; False (and nothing spent) when it is empty."""

    def available(self, key: str) -> bool:
        """Whether `key` has a token left, without spending it."""


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 and self.burst > 0


class MemoryTokenBuckets:
    """Token buckets per key in this process, least recently used evicted beyond `max_keys`.

    Evicting a bucket forgets its debt, which at worst lets an evicted sender
    burst once more; the bound keeps memory flat however many senders appear.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.rate = rate
        self._clock = clock
        self.max_keys = max_keys
        self._buckets: "OrderedDict[str, tuple[float, float]]" = OrderedDict()
        self._lock = threading.Lock()  # the desk calls from worker threads too

    def _level(self, key: str, now: float) -> float:
        tokens, since = self._buckets.get(key, (self.rate.burst, now))
        refill = max(0.0, now - since) * self.rate.per_minute / 60.0
        return min(self.rate.burst, tokens + refill)

    def take(self, key: str) -> bool:
        if not self.rate.enabled:
            return True
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed

    def available(self, key: str) -> bool:
        if not self.rate.enabled:
            return True
        with self._lock:
            return self._level(key, self._clock()) >= 1.0


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def message_rate(env: Optional[Mapping[str, str]] = None) -> Rate:
    """KEFU_RATE_PER_MINUTE / KEFU_RATE_BURST (0 turns the limit off)."""
    env = os.environ if env is None else env
    return Rate(_number(env, "KEFU_RATE_PER_MINUTE", DEFAULT_PER_MINUTE),
                _number(env, "KEFU_RATE_BURST", DEFAULT_BURST))


def login_failure_rate(env: Optional[Mapping[str, str]] = None) -> Rate:
    """KEFU_DESK_LOGIN_FAILURES_PER_MINUTE / _BURST, per client address (0 turns it off)."""
    env = os.environ if env is None else env
    return Rate(_number(env, "KEFU_DESK_LOGIN_FAILURES_PER_MINUTE", DEFAULT_LOGIN_FAILURES_PER_MINUTE),
                _number(env, "KEFU_DESK_LOGIN_FAILURES_BURST", DEFAULT_LOGIN_FAILURES_BURST))


OnNewMessage = Callable[[Any], Awaitable[Any]]


def limit_messages(on_new_message: OnNewMessage, limiter: RateLimiter, channel: str) -> OnNewMessage:
    """Wrap Rasa's `on_new_message` so a sender over the limit gets `TOO_FAST_REPLY` instead.

    The message never reaches the model or the tracker: an over-eager sender
    costs a dictionary lookup, and the answer goes out on the message's own
    output channel, so REST, socket.io and WeChat all show it the usual way.
    The bucket is keyed by the channel's own name, not the message's
    ``input_channel`` (a REST caller may set that one).
    """

    async def limited(message: Any) -> Any:
        key = f"{channel}:{message.sender_id}"
        if limiter.take(key):
            return await on_new_message(message)
        await message.output_channel.send_text_message(message.sender_id, TOO_FAST_REPLY)
        return None

    return limited


_shared: dict[str, MemoryTokenBuckets] = {}


def shared_message_limiter() -> MemoryTokenBuckets:
    """One limiter for every channel of this process, so a sender's bucket is the same in all."""
    if "messages" not in _shared:
        _shared["messages"] = MemoryTokenBuckets(message_rate())
    return _shared["messages"]
