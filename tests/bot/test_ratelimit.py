"""The token buckets behind the per-sender rate limit (bot.ratelimit), on a controlled clock.

Both backends pass the same tests: in this process's memory, and in a real
Redis (Debian's redis-server, started here) where several processes share them.
"""
from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bench.stack import private_redis
from bot.run import free_port
from bot.ratelimit import (
    TOO_FAST_REPLY,
    MemoryTokenBuckets,
    Rate,
    RateLimiter,
    RedisTokenBuckets,
    limit_messages,
    login_failure_rate,
    message_rate,
    token_buckets,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Buckets = Callable[..., RateLimiter]


@pytest.fixture(params=["memory", "redis"])
def make_buckets(request: pytest.FixtureRequest) -> Iterator[Buckets]:
    """A factory of buckets on one backend; with Redis (tests/conftest.py's private
    redis-server), every call is another process's view of one store."""
    if request.param == "memory":
        yield lambda rate, clock: MemoryTokenBuckets(rate, clock=clock)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    clients: list[redis.Redis] = []

    def make(rate: Rate, clock: Clock) -> RedisTokenBuckets:
        clients.append(redis.Redis.from_url(url))
        return RedisTokenBuckets(rate, clients[-1], prefix=prefix, clock=clock)

    yield make
    for client in clients:
        client.close()


def test_a_burst_then_the_sustained_rate(make_buckets: Buckets) -> None:
    clock = Clock()
    buckets = make_buckets(Rate(per_minute=20, burst=10), clock)
    assert all(buckets.take("web:a") for _ in range(10))
    assert not buckets.take("web:a")
    assert not buckets.available("web:a")
    clock.now += 2.9  # one token takes 3 s at 20 a minute
    assert not buckets.take("web:a")
    clock.now += 0.2
    assert buckets.take("web:a")
    assert not buckets.take("web:a")


def test_senders_have_their_own_buckets_and_a_full_one_stays_full(make_buckets: Buckets) -> None:
    clock = Clock()
    buckets = make_buckets(Rate(per_minute=60, burst=2), clock)
    assert buckets.take("a") and buckets.take("a") and not buckets.take("a")
    assert buckets.take("b")
    clock.now += 3600  # an hour idle refills to the burst, never beyond
    assert [buckets.take("a") for _ in range(3)] == [True, True, False]


def test_a_refused_message_costs_nothing(make_buckets: Buckets) -> None:
    clock = Clock()
    buckets = make_buckets(Rate(per_minute=60, burst=1), clock)
    assert buckets.take("a")
    for _ in range(50):  # hammering does not push the next token further away
        assert not buckets.take("a")
    clock.now += 1.0
    assert buckets.take("a")


def test_memory_is_bounded_by_evicting_the_least_recent_sender() -> None:
    buckets = MemoryTokenBuckets(Rate(per_minute=1, burst=1), clock=Clock(), max_keys=3)
    for key in ("a", "b", "c", "d"):
        assert buckets.take(key)
    assert len(buckets._buckets) == 3
    assert buckets.take("a")  # forgotten, so full again
    assert not buckets.take("d")


def test_zero_turns_it_off(make_buckets: Buckets) -> None:
    buckets = make_buckets(Rate(per_minute=0, burst=10), Clock())
    assert all(buckets.take("a") for _ in range(1000))


def test_configuration_from_the_environment() -> None:
    assert message_rate({}) == Rate(20, 10)
    assert message_rate({"KEFU_RATE_PER_MINUTE": "6", "KEFU_RATE_BURST": "3"}) == Rate(6, 3)
    assert login_failure_rate({}) == Rate(2, 20)
    with pytest.raises(ValueError, match="KEFU_RATE_BURST"):
        message_rate({"KEFU_RATE_BURST": "many"})
    with pytest.raises(ValueError, match="negative"):
        message_rate({"KEFU_RATE_PER_MINUTE": "-1"})


def test_a_sender_over_the_limit_is_answered_politely_and_the_bot_is_not_called() -> None:
    seen: list[str] = []

    async def bot(message: UserMessage) -> None:
        seen.append(message.text)
        await message.output_channel.send_text_message(message.sender_id, "好的")

    limited = limit_messages(bot, MemoryTokenBuckets(Rate(per_minute=1, burst=2), clock=Clock()), "rest")

    async def say(sender: str, text: str) -> list[str]:
        out = CollectingOutputChannel()
        await limited(UserMessage(text, out, sender, input_channel="rest"))
        return [m["text"] for m in out.messages]

    async def run() -> None:
        assert await say("s1", "一") == ["好的"]
        assert await say("s1", "二") == ["好的"]
        assert await say("s1", "三") == [TOO_FAST_REPLY]
        assert await say("s2", "四") == ["好的"]  # another sender is not slowed down
        out = CollectingOutputChannel()  # naming another input channel does not open a new bucket
        await limited(UserMessage("五", out, "s1", input_channel="wechat"))
        assert [m["text"] for m in out.messages] == [TOO_FAST_REPLY]

    asyncio.run(run())
    assert seen == ["一", "二", "四"]


def test_processes_sharing_redis_share_each_senders_bucket(make_buckets: Buckets) -> None:
    """Two Rasa workers (or servers) see one bucket per sender, not one each: N processes, not N× the rate."""
    clock = Clock()
    rate = Rate(per_minute=20, burst=10)
    first, second = make_buckets(rate, clock), make_buckets(rate, clock)
    taken = [(first if i % 2 else second).take("rest:a") for i in range(20)]
    if isinstance(first, MemoryTokenBuckets):
        assert taken.count(True) == 20  # why Redis is needed: each process has a full bucket of its own
    else:
        assert taken.count(True) == 10 and not first.available("rest:a") and not second.available("rest:a")


def test_redis_buckets_expire_once_they_would_be_full_again(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    buckets = RedisTokenBuckets(Rate(per_minute=60, burst=5), client, prefix=f"test:{uuid.uuid4().hex}:")
    assert buckets.take("web:a")
    ttl_ms = client.pttl(f"{buckets.prefix}web:a")
    assert 5_000 < ttl_ms <= 6_000  # 5 tokens at one a second, plus a second's margin
    assert buckets.available("web:b") and client.exists(f"{buckets.prefix}web:b") == 0  # looking writes nothing
    client.close()


def test_redis_buckets_use_the_redis_clock_when_none_is_given(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    buckets = RedisTokenBuckets(Rate(per_minute=6, burst=2), client, prefix=f"test:{uuid.uuid4().hex}:")
    assert [buckets.take("a") for _ in range(3)] == [True, True, False]  # a token takes 10 s to come back
    since = float(client.hget(f"{buckets.prefix}a", "since"))
    seconds, micros = client.time()
    assert 0 <= seconds + micros / 1e6 - since < 5
    client.close()


def test_redis_down_falls_back_to_this_processs_buckets_then_returns(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Neither refused nor unlimited while Redis is away; shared again once it is back."""
    if shutil.which("redis-server") is None:
        pytest.skip("Debian's redis-server is not installed (scripts/test.sh installs it)")
    clock = Clock()
    port = free_port()
    client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    buckets = RedisTokenBuckets(Rate(per_minute=60, burst=3), client, clock=clock, retry_after_s=0.0)
    with private_redis(tmp_path, port):
        assert buckets.take("a") and buckets.take("a")
    # Redis has stopped.
    assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]  # the local bucket still limits
    assert "Redis unreachable" in caplog.text
    with private_redis(tmp_path, port):  # back, empty (no script cached, no buckets kept)
        assert buckets.take("b")
        assert client.exists(f"{buckets.prefix}b") == 1  # on the shared store again
    client.close()


def test_the_backend_follows_kefu_redis_url(redis_url: str) -> None:
    assert isinstance(token_buckets(Rate(20, 10), "messages", {}), MemoryTokenBuckets)
    shared = token_buckets(Rate(20, 10), "messages", {"KEFU_REDIS_URL": redis_url})
    assert isinstance(shared, RedisTokenBuckets) and shared.prefix == "kefu:rate:messages:"
    key = f"t-{uuid.uuid4().hex}"
    assert shared.take(key)
    client = redis.Redis.from_url(redis_url)
    assert client.exists(f"kefu:rate:messages:{key}") == 1
    client.close()
