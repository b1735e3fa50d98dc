"""The token buckets behind the per-sender rate limit (bot.ratelimit), on a controlled clock."""
from __future__ import annotations

import asyncio

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bot.ratelimit import (
    TOO_FAST_REPLY,
    MemoryTokenBuckets,
    Rate,
    limit_messages,
    login_failure_rate,
    message_rate,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_sustained_rate() -> None:
    clock = Clock()
    buckets = MemoryTokenBuckets(Rate(per_minute=20, burst=10), clock=clock)
    assert all(buckets.take("web:a") for _ in range(10))
    assert not buckets.take("web:a")
    assert not buckets.available("web:a")
    clock.now += 2.9  # one token takes 3 s at 20 a minute
    assert not buckets.take("web:a")
    clock.now += 0.2
    assert buckets.take("web:a")
    assert not buckets.take("web:a")


def test_senders_have_their_own_buckets_and_a_full_one_stays_full() -> None:
    clock = Clock()
    buckets = MemoryTokenBuckets(Rate(per_minute=60, burst=2), clock=clock)
    assert buckets.take("a") and buckets.take("a") and not buckets.take("a")
    assert buckets.take("b")
    clock.now += 3600  # an hour idle refills to the burst, never beyond
    assert [buckets.take("a") for _ in range(3)] == [True, True, False]


def test_a_refused_message_costs_nothing() -> None:
    clock = Clock()
    buckets = MemoryTokenBuckets(Rate(per_minute=60, burst=1), clock=clock)
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


def test_zero_turns_it_off() -> None:
    buckets = MemoryTokenBuckets(Rate(per_minute=0, burst=10), clock=Clock())
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
