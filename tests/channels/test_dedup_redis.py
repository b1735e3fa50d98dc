"""The WeChat dedup store shared through a real Redis server (bot/channels/dedup.py)."""
from __future__ import annotations

import asyncio

import redis.asyncio

from bot.channels.dedup import RedisTurnStore, TurnStore, turn_store
from bot.run import free_port


def _store(url: str) -> RedisTurnStore:
    return RedisTurnStore(redis.asyncio.Redis.from_url(url), ttl_s=60, poll_s=0.02)


def test_a_retry_on_another_process_gets_the_first_answer(redis_url):
    async def scenario() -> None:
        owner, other = _store(redis_url), _store(redis_url)
        turn, first = await owner.aclaim("openid-1:msg-1")
        retry, retry_first = await other.aclaim("openid-1:msg-1")
        assert first and not retry_first
        assert not retry.answer.done()
        turn.answer.set_result("<xml>您好，亲</xml>")
        assert await asyncio.wait_for(retry.answer, 5) == "<xml>您好，亲</xml>"
        # A message with another id is a new turn.
        _, new_first = await other.aclaim("openid-1:msg-2")
        assert new_first

    asyncio.run(scenario())


def test_a_retry_on_the_same_process_shares_the_turn(redis_url):
    async def scenario() -> None:
        store = _store(redis_url)
        turn, first = await store.aclaim("openid-2:msg-1")
        again, again_first = await store.aclaim("openid-2:msg-1")
        assert first and not again_first and again is turn

    asyncio.run(scenario())


def test_without_redis_each_process_decides_alone():
    async def scenario() -> None:
        store = _store(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
        _, first = await store.aclaim("openid-3:msg-1")
        assert first

    asyncio.run(scenario())


def test_the_shared_store_only_when_a_redis_url_is_configured(redis_url):
    assert isinstance(turn_store(600.0, ""), TurnStore)
    assert isinstance(turn_store(600.0, redis_url), RedisTurnStore)
