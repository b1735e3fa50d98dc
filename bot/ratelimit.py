"""Per-sender rate limiting where customer messages enter, and for desk logins.

Why: one sender (a script, a stuck client, an attacker rotating nothing but
their patience) could otherwise make the single Rasa process run the model
as fast as it can send, starving every other customer.  A token bucket lets
a person type in bursts (a few quick lines, then a pause) while capping the
sustained rate; the defaults (20 messages a minute, bursts of 10) are far
above what anyone typing reaches.

The buckets live in this process's memory (`MemoryTokenBuckets`), or, when
KEFU_REDIS_URL is set (several Rasa workers or servers), in that Redis
(`RedisTokenBuckets`): per-process buckets would give a sender spread over N
processes N times the rate.  The channels and the desk see only `RateLimiter`;
`token_buckets` picks the backend.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Protocol

logger = logging.getLogger(__name__)

#: What a customer who sends too fast reads instead of the bot's answer.
TOO_FAST_REPLY = "您发送得太快了，请稍后再试"

DEFAULT_PER_MINUTE = 20.0
DEFAULT_BURST = 10.0
#: Failed desk logins per client address: 20 at once, then one every 30 s.
DEFAULT_LOGIN_FAILURES_PER_MINUTE = 2.0
DEFAULT_LOGIN_FAILURES_BURST = 20.0


class RateLimiter(Protocol):
    """What the channels and the desk need from a limiter (in memory or in Redis)."""

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


#: One bucket, updated atomically in Redis: refill since the last call, then
#: spend a token if there is one (ARGV[3] == "1"; "0" only looks).  The clock
#: is Redis's own unless the caller passes one (ARGV[5]), so servers whose
#: clocks differ still share one refill.  A bucket left alone until it would be
#: full again expires (ARGV[4] ms): absent and full are the same thing.
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local spend = ARGV[3] == "1"
local now = tonumber(ARGV[5])
if not now then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call("TIME")
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call("HMGET", KEYS[1], "tokens", "since")
local tokens = tonumber(state[1]) or burst
local since = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - since) * rate)
local allowed = tokens >= 1
if spend then
  if allowed then tokens = tokens - 1 end
  redis.call("HSET", KEYS[1], "tokens", string.format("%.17g", tokens), "since", string.format("%.17g", now))
  redis.call("PEXPIRE", KEYS[1], ARGV[4])
end
if allowed then return 1 end
return 0
"""


class RedisTokenBuckets:
    """The same token buckets, kept in Redis so every Rasa worker and server shares a sender's.

    One round trip per check (a Lua script, so two workers taking the last
    token at once cannot both get it).  While Redis cannot be reached the
    limit falls back to this process's own buckets for `retry_after_s` at a
    time (a warning each time): a customer is neither refused nor left unlimited because the
    limiter's store is down (the conversation lock store will be failing
    then too, and says so itself).
    """

    def __init__(self, rate: Rate, client: Any, prefix: str = "kefu:rate:",
                 clock: Optional[Callable[[], float]] = None, retry_after_s: float = 5.0) -> None:
        self.rate = rate
        self.prefix = prefix
        self._client = client
        self._script = client.register_script(_BUCKET_LUA)
        self._clock = clock
        self._retry_after_s = retry_after_s
        self._fallback = MemoryTokenBuckets(rate, clock=clock or time.monotonic)
        self._down_until = 0.0
        # A bucket untouched for the time it takes to refill from empty is full.
        self._ttl_ms = int(math.ceil(1000 * rate.burst * 60 / rate.per_minute)) + 1000 if rate.enabled else 0

    def _check(self, key: str, spend: bool) -> bool:
        if not self.rate.enabled:
            return True
        if time.monotonic() < self._down_until:
            return self._local(key, spend)
        args: list[Any] = [repr(self.rate.per_minute / 60.0), repr(float(self.rate.burst)),
                           "1" if spend else "0", self._ttl_ms]
        if self._clock is not None:
            args.append(repr(self._clock()))
        try:
            return bool(self._script(keys=[self.prefix + key], args=args))
        except Exception as exc:  # redis.RedisError and socket errors alike: the store is unusable
            logger.warning("Rate limiter: Redis unreachable (%s); limiting in this process for %.0f s",
                           type(exc).__name__, self._retry_after_s)
            self._down_until = time.monotonic() + self._retry_after_s
            return self._local(key, spend)

    def _local(self, key: str, spend: bool) -> bool:
        return self._fallback.take(key) if spend else self._fallback.available(key)

    def take(self, key: str) -> bool:
        return self._check(key, spend=True)

    def available(self, key: str) -> bool:
        return self._check(key, spend=False)


def token_buckets(rate: Rate, name: str, env: Optional[Mapping[str, str]] = None) -> RateLimiter:
    """Buckets in KEFU_REDIS_URL's Redis when it is set (shared by all processes), else in memory."""
    env = os.environ if env is None else env
    url = (env.get("KEFU_REDIS_URL") or "").strip()
    if not url:
        return MemoryTokenBuckets(rate)
    import redis

    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RedisTokenBuckets(rate, client, prefix=f"kefu:rate:{name}:")


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


_shared: dict[str, RateLimiter] = {}


def shared_message_limiter() -> RateLimiter:
    """One limiter for every channel of this process (and, with Redis, of every process),
    so a sender's bucket is the same in all."""
    if "messages" not in _shared:
        _shared["messages"] = token_buckets(message_rate(), "messages")
    return _shared["messages"]
