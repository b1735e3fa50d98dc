"""Conversation locks outlive their ticket lifetime while the holder is alive (bot/lock_store.py).

Each test uses lifetimes of a fraction of a second and turns several times
longer: with Rasa's own stores the second message of a customer gets in
when the first one's ticket runs out, and a message that waited longer
than the lifetime fails with LockError.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Callable

import pytest
from rasa.core.lock_store import LockStore

from bot.lock_store import MAX_HOLD_ENV, RenewedInMemoryLockStore, RenewedRedisLockStore
from bot.settings import ROOT

# Renewed every third of a lifetime: a test fails only if the event loop
# stalls for two thirds of one (0.4 s), which a busy CI machine can do to
# shorter lifetimes.
LIFETIME = 0.6
TURN = 4 * LIFETIME
POLL = 0.05


def _redis_store(url: str) -> RenewedRedisLockStore:
    host_port = url.removeprefix("redis://").split("/")[0]
    host, port = host_port.split(":")
    return RenewedRedisLockStore(host=host, port=int(port), db=0, key_prefix="kefutest")


@pytest.fixture(params=["in_memory", "redis"])
def new_store(request: pytest.FixtureRequest) -> Callable[[], LockStore]:
    """A factory: for Redis every call is another client, as another server would be."""
    if request.param == "in_memory":
        shared = RenewedInMemoryLockStore()
        return lambda: shared
    url = request.getfixturevalue("redis_url")
    return lambda: _redis_store(url)


async def _turn(store: LockStore, conversation: str, log: list[tuple[str, str]], name: str, hold: float) -> None:
    async with store.lock(conversation, lock_lifetime=LIFETIME, wait_time_in_seconds=POLL):
        log.append(("in", name))
        await asyncio.sleep(hold)
        log.append(("out", name))


def test_a_slow_turn_keeps_the_customer_locked_until_it_ends(new_store):
    log: list[tuple[str, str]] = []

    async def scenario() -> None:
        first = asyncio.create_task(_turn(new_store(), "c1", log, "first", TURN))
        await asyncio.sleep(0.05)
        await _turn(new_store(), "c1", log, "second", 0.01)
        await first

    asyncio.run(scenario())
    assert log == [("in", "first"), ("out", "first"), ("in", "second"), ("out", "second")]


def test_messages_that_wait_longer_than_the_lifetime_keep_their_place(new_store):
    log: list[tuple[str, str]] = []

    async def scenario() -> None:
        tasks = []
        for name in ("a", "b", "c"):
            tasks.append(asyncio.create_task(_turn(new_store(), "c2", log, name, TURN / 2)))
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert log == [("in", "a"), ("out", "a"), ("in", "b"), ("out", "b"), ("in", "c"), ("out", "c")]


def test_other_customers_are_not_held_up(new_store):
    log: list[tuple[str, str]] = []

    async def scenario() -> None:
        slow = asyncio.create_task(_turn(new_store(), "c3", log, "slow", TURN))
        await asyncio.sleep(0.05)
        await _turn(new_store(), "c4", log, "other", 0.01)
        await slow

    asyncio.run(scenario())
    assert log.index(("out", "other")) < log.index(("out", "slow"))


def test_a_turn_that_hangs_is_renewed_only_up_to_the_bound(monkeypatch):
    """The bound counts from when a message got the lock, not from when it arrived:
    the messages queued behind a hung turn keep their tickets and are served in
    order once it lapses (counted from arrival, "next" lost its ticket together
    with the hung one and failed with LockError, or "third" ran beside it)."""
    monkeypatch.setenv(MAX_HOLD_ENV, str(2 * LIFETIME))
    store = RenewedInMemoryLockStore()
    log: list[tuple[str, str]] = []

    async def scenario() -> None:
        hung = asyncio.create_task(_turn(store, "c5", log, "hung", 10 * LIFETIME))
        await asyncio.sleep(0.05)
        following = asyncio.create_task(_turn(store, "c5", log, "next", 1.5 * LIFETIME))
        await asyncio.sleep(0.05)
        await _turn(store, "c5", log, "third", 0.01)
        await following
        hung.cancel()

    asyncio.run(scenario())
    assert log == [("in", "hung"), ("in", "next"), ("out", "next"), ("in", "third"), ("out", "third")]


def test_the_lock_is_gone_when_the_last_message_is_done(new_store):
    store = new_store()

    async def scenario() -> None:
        await _turn(store, "c6", [], "only", 0.01)

    asyncio.run(scenario())
    assert store.get_lock("c6") is None


def test_two_redis_servers_never_process_one_customer_at_once(redis_url):
    """Threads with their own client and loop stand for servers; Rasa's get-then-set
    store lets some of them in together (overwritten tickets)."""
    inside, overlaps, done = [0], [], []
    guard = threading.Lock()

    def server(index: int) -> None:
        store = _redis_store(redis_url)

        async def messages() -> None:
            for _ in range(5):
                async with store.lock("shared", lock_lifetime=5, wait_time_in_seconds=0.01):
                    with guard:
                        inside[0] += 1
                        if inside[0] > 1:
                            overlaps.append(index)
                    await asyncio.sleep(0.005)
                    with guard:
                        inside[0] -= 1
                done.append(index)

        asyncio.run(messages())

    threads = [threading.Thread(target=server, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(done) == 30
    assert overlaps == []


def test_a_dead_servers_lock_expires_after_the_lifetime(redis_url):
    """A server killed mid-turn stops renewing: its customer is free again a lifetime later."""
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.bot.test_lock_store import _redis_store

        async def main():
            store = _redis_store({redis_url!r})
            async with store.lock("c7", lock_lifetime={LIFETIME}, wait_time_in_seconds=0.05):
                print("holding", flush=True)
                await asyncio.sleep({2 * LIFETIME})  # renewed meanwhile
                os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    store = _redis_store(redis_url)
    log: list[tuple[str, str]] = []
    started = time.monotonic()

    async def scenario() -> None:
        await _turn(store, "c7", log, "after", 0.01)

    asyncio.run(scenario())
    waited = time.monotonic() - started
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert log == [("in", "after"), ("out", "after")]
    # It waited for the renewed holder (two lifetimes), then at most a lifetime and a poll or two.
    assert waited >= 2 * LIFETIME - 0.1


@pytest.mark.parametrize("endpoints, overrides, expected", [
    (ROOT / "endpoints.yml", {}, RenewedInMemoryLockStore),
    (ROOT / "endpoints.yml", {"KEFU_REDIS_URL": "redis://:s3cret@127.0.0.1:6399/3", "KEFU_RASA_WORKERS": "2"},
     RenewedRedisLockStore),
    (ROOT / "deploy" / "scaleout" / "endpoints.yml", {}, RenewedRedisLockStore),
])
def test_the_endpoint_files_use_the_renewed_stores(endpoints, overrides, expected, monkeypatch, tmp_path):
    from rasa.core.utils import AvailableEndpoints

    from bot import settings

    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    monkeypatch.delenv("KEFU_RASA_WORKERS", raising=False)
    env = settings.load(tmp_path, overrides).child_env()  # what the runtime gives Rasa
    for var in set(re.findall(r"\$\{(\w+)\}", endpoints.read_text(encoding="utf-8"))):
        monkeypatch.setenv(var, env.get(var) or ("6379" if var.endswith("_PORT") else f"value-of-{var.lower()}"))
    store = LockStore.create(AvailableEndpoints.read_endpoints(str(endpoints)).lock_store)
    assert type(store) is expected
    if overrides:  # the one Redis URL the WeChat retry store also uses
        assert {k: store.red.connection_pool.connection_kwargs[k] for k in ("host", "port", "db", "password")} \
            == {"host": "127.0.0.1", "port": 6399, "db": 3, "password": "s3cret"}


@pytest.mark.parametrize("workers, redis_url, error", [
    ("2", "", "needs KEFU_REDIS_URL"),
    ("0", "redis://127.0.0.1:6379/0", "at least one"),
    ("two", "redis://127.0.0.1:6379/0", "not a whole number"),
])
def test_several_rasa_workers_need_a_shared_lock_store(workers, redis_url, error, tmp_path):
    from bot import settings

    with pytest.raises(ValueError, match=error):
        settings.load(tmp_path, {"KEFU_RASA_WORKERS": workers, "KEFU_REDIS_URL": redis_url})
    assert settings.load(tmp_path, {"KEFU_RASA_WORKERS": "", "KEFU_REDIS_URL": ""}).rasa_workers == 1


@pytest.mark.parametrize("workers", ["2", "4"])
def test_the_in_memory_store_refuses_several_sanic_workers(monkeypatch, workers):
    # Rasa lets any lock store named by class run several workers; these locks
    # would then be per process and one customer's messages could run at once.
    monkeypatch.setenv("SANIC_WORKERS", workers)
    with pytest.raises(ValueError, match="one process"):
        RenewedInMemoryLockStore()
    for one in ("1", "0", "x", ""):  # Rasa runs one worker for these
        monkeypatch.setenv("SANIC_WORKERS", one)
        RenewedInMemoryLockStore()
