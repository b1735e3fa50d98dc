"""Two Sanic workers of one Rasa server, sharing conversation locks in Redis (KEFU_RASA_WORKERS).

Why a real stack: the claims are about processes.  Both workers take messages
from one port; a customer who sends a burst must still be served one message
at a time (a second worker running the same customer at once would load the
same tracker before the first had saved, and answer without seeing it), and
a website visitor whose socket one worker holds must still get an agent's
reply that reached the other.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import redis
import requests
from playwright.sync_api import expect

from bench.rest_load import run_threads
from bench.stack import private_redis
from bot.run import Stack, isolated_stack
from crm_adapter import CRM
from crm_adapter.seed import seed
from tests.browser import (browser_factory, chromium, expect_reply, messages, open_chat,  # noqa: F401 (fixtures)
                           send, session_id)
from tests.conftest import Chat

BURST = ["你好", "运费怎么算", "几天能到", "你们几点下班", "怎么付款", "谢谢"]
#: The per-sender limit these workers run with (isolated stacks turn it off otherwise).
RATE_PER_MINUTE, RATE_BURST = 20, 10


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _turns_whole(events: list[dict]) -> bool:
    """One turn at a time: events stored in the order they happened.

    Each turn's events are saved together when it ends, so two workers serving
    one customer at once still store whole turns, one after the other; but
    the second turn began (its user event is stamped once it holds the lock
    and has loaded the tracker) before the first ended, without seeing it.
    """
    stamps = [e["timestamp"] for e in events]
    return all(a <= b for a, b in zip(stamps, stamps[1:]))


def _outline(events: list[dict]) -> list[str]:
    return [f'{e.get("text") or e.get("name") or e["event"]}@{e["timestamp"]:.3f}'
            for e in events if e["event"] in ("user", "action")]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("redis-server") is None:
        pytest.skip("Debian's redis-server is not installed (scripts/test.sh installs it)")
    tmp = tmp_path_factory.mktemp("workers")
    crm = CRM(f"sqlite:///{tmp / 'crm.sqlite3'}")
    crm.create_schema()
    seed(crm, customers=50, seed=42)
    with private_redis(tmp) as redis_url:
        stack = isolated_stack(tmp, crm.url, {"KEFU_RASA_WORKERS": "2", "KEFU_REDIS_URL": redis_url,
                                                   "KEFU_RATE_PER_MINUTE": str(RATE_PER_MINUTE),
                                                   "KEFU_RATE_BURST": str(RATE_BURST)})
        workers: list[psutil.Process] = []
        tmp_dirs: list[Path] = []
        try:
            stack.start(timeout=300)  # waits for both workers' models (Stack._wait_rasa_workers)
            workers = psutil.Process(stack.named["rasa"].pid).children()
            tmp_dirs = list(stack._tmp_dirs.values())
            yield stack
        finally:
            stack.stop()
            crm.dispose()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers), "a worker outlived stop()"
    assert tmp_dirs and not any(d.exists() for d in tmp_dirs), "the workers' temporary files outlived stop()"


def test_the_workers_temporary_files_are_kept_in_the_stacks_own_folder(two_workers: Stack) -> None:
    """Forked workers exit without exit hooks, so TensorFlow's autograph files
    (~40 a start) were left in /tmp at every stop; the fixture checks they go."""
    folder = two_workers._tmp_dirs["rasa"]
    for worker in psutil.Process(two_workers.named["rasa"].pid).children():
        assert worker.environ().get("TMPDIR") == str(folder)
    assert list(folder.glob("__autograph_generated_file*.py")), "TensorFlow wrote elsewhere"


def test_two_workers_share_the_port_and_serve_each_customer_one_message_at_a_time(two_workers: Stack) -> None:
    stack = two_workers
    workers = psutil.Process(stack.named["rasa"].pid).children()
    assert len(workers) == 2, workers  # Sanic's main process forked two workers
    before = [_cpu(w) for w in workers]
    # An ordinary conversation, whichever worker answers each message.
    chat = Chat(stack)
    assert "您好" in chat.say("你好")
    assert "运费" in chat.say("运费怎么算")

    # Each of 8 customers sends a burst at once: every message in every
    # tracker exactly once, none lost to a concurrent save.
    customers = [Chat(stack) for _ in range(8)]
    failures: list[str] = []

    def send(customer: Chat, text: str) -> None:
        response = requests.post(customer.url, json={"sender": customer.sender, "message": text}, timeout=120)
        if response.status_code != 200 or not response.json():
            failures.append(f"{customer.sender} {text}: {response.status_code} {response.text[:200]}")

    started = time.monotonic()
    run_threads([threading.Thread(target=send, args=(c, t)) for c in customers for t in BURST])
    assert not failures, failures
    for customer in customers:
        events = customer.tracker()["events"]
        texts = [e["text"] for e in events if e["event"] == "user"]
        assert sorted(texts) == sorted(BURST), (customer.sender, texts)
        assert _turns_whole(events), (customer.sender, _outline(events))
    assert time.monotonic() - started < 180

    # Both workers did some of that work.
    grew = [_cpu(w) - b for w, b in zip(workers, before)]
    assert all(g > 0.2 for g in grew), grew


def test_an_agent_reply_reaches_a_website_socket_whichever_worker_takes_it(two_workers: Stack,
                                                                          browser_factory) -> None:
    # The widget in Chromium: its WebSocket is held by one worker, and twelve
    # agent replies arrive over HTTP at once, so the workers share them.
    s = two_workers.settings
    pushes = [f"人工客服小王：第{i}条回复" for i in range(12)]
    page = browser_factory().page()
    open_chat(page, s.web_url)
    send(page, "你好")
    expect_reply(page, "您好")
    session = session_id(page)

    failures: list[str] = []

    def push(text: str) -> None:  # a connection of its own each (requests.post, no session)
        response = requests.post(f"{s.rasa_url}/conversations/{session}/tracker/events",
                                 params={"token": s.rasa_token, "output_channel": "latest",
                                         "execute_side_effects": "true"},
                                 json={"event": "bot", "text": text}, timeout=60)
        if response.status_code != 200:
            failures.append(f"{response.status_code} {response.text[:200]}")

    run_threads([threading.Thread(target=push, args=(text,)) for text in pushes])
    assert not failures, failures
    for text in pushes:
        expect(messages(page)).to_contain_text(text, timeout=20_000)


def test_a_senders_rate_limit_is_one_bucket_across_the_workers(two_workers: Stack) -> None:
    # 16 messages at once, each on a connection of its own so both workers
    # take some: the sender's bucket (burst 10, 20 a minute) is in Redis, so
    # at most 10 + the refill get through, not 10 per worker.
    from bot.ratelimit import TOO_FAST_REPLY

    customer = Chat(two_workers)
    replies: list[str] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        response = requests.post(customer.url, json={"sender": customer.sender, "message": f"你好{i}"}, timeout=120)
        response.raise_for_status()
        with lock:
            replies.append(" ".join(m.get("text", "") for m in response.json()))

    started = time.monotonic()
    run_threads([threading.Thread(target=send, args=(i,)) for i in range(16)])
    refill = (time.monotonic() - started) * RATE_PER_MINUTE / 60
    answered = [r for r in replies if r != TOO_FAST_REPLY]
    assert len(replies) == 16
    assert RATE_BURST <= len(answered) <= RATE_BURST + refill, (len(answered), refill, replies)
    stored = [e["text"] for e in customer.tracker()["events"] if e["event"] == "user"]
    assert len(stored) == len(answered)  # a refused message never reached the model
    # The bucket both workers spent from is the one in Redis (whichever worker
    # took the connections: the kernel may hand them all to one).
    client = redis.Redis.from_url(two_workers.settings.redis_url)
    keys = client.keys(f"kefu:rate:messages:*{customer.sender}")
    assert len(keys) == 1 and float(client.hget(keys[0], "tokens")) < 1, keys
    client.close()


def test_long_polling_is_refused_when_the_workers_cannot_share_a_session(two_workers: Stack) -> None:
    # A polling session's next request could land on the other worker, which
    # never saw it; the widget falls back to polling only if WebSocket fails.
    s = two_workers.settings
    response = requests.get(f"{s.rasa_url}/socket.io/", params={"EIO": "4", "transport": "polling"},
                            headers={"Origin": s.web_url}, timeout=10)
    assert response.status_code == 400, response.text
