"""Load through the website channel (socket.io): messages/s and latency.

N concurrent visitors (python-socketio AsyncClient; long-polling, because
python-engineio's websocket client needs aiohttp >= 3.10 and Rasa pins 3.9 --
browsers use websocket, which is cheaper, so these figures are conservative;
half signed in with a shop token bound to a CRM customer)
each open a session and run the script `--rounds` times, one message at a
time.  Per message, two latencies: until the first bot_uttered (what the
customer sees first) and until the last one of the turn (a turn is over
when no further message came for `QUIET_S`; that wait is not counted in the
latency, but it is in the wall time, so messages/s is slightly pessimistic).

    python -m bench.socketio_load [--concurrency 50] [--rounds 1]

Not a test: prints JSON and writes var/bench/socketio_load.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Optional

import socketio

from bench.rest_load import percentile
from bot.channels.web_token import sign
from bot.run import isolated_stack
from crm_adapter import CRM
from crm_adapter.seed import seed

SCRIPT = (
    "你好",
    "我的快递到哪了",          # identify + order query (CRM) for signed-in visitors
    "满多少包邮",              # FAQ
    "我还有多少积分",          # membership (CRM)
    "谢谢",
)
QUIET_S = 0.5
TURN_TIMEOUT_S = 180


class Visitor:
    def __init__(self, url: str, origin: str, token: Optional[str]) -> None:
        self.url, self.origin, self.token = url, origin, token
        self.client = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.confirm: asyncio.Queue = asyncio.Queue()
        self.client.on("bot_uttered", self.inbox.put)
        self.client.on("session_confirm", self.confirm.put)
        self.session_id = ""

    async def open(self) -> None:
        await self.client.connect(self.url, headers={"Origin": self.origin}, transports=["polling"],
                                  socketio_path="/socket.io", wait_timeout=30)
        await self.client.emit("session_request", {"session_id": None})
        self.session_id = await asyncio.wait_for(self.confirm.get(), 30)

    async def say(self, text: str) -> tuple[float, float, int]:
        """(ms to the first reply, ms to the last reply, replies) for one message."""
        custom = {"token": self.token} if self.token else {}
        start = time.perf_counter()
        await self.client.emit("user_uttered", {"message": text, "session_id": self.session_id,
                                                "customData": custom})
        await asyncio.wait_for(self.inbox.get(), TURN_TIMEOUT_S)
        first = last = time.perf_counter()
        count = 1
        while True:
            try:
                await asyncio.wait_for(self.inbox.get(), QUIET_S)
            except asyncio.TimeoutError:
                break
            last = time.perf_counter()
            count += 1
        return (first - start) * 1000, (last - start) * 1000, count


async def load(rasa_url: str, origin: str, tokens: list[Optional[str]], rounds: int) -> dict:
    visitors = [Visitor(rasa_url, origin, token) for token in tokens]
    await asyncio.gather(*(v.open() for v in visitors))
    firsts: list[float] = []
    lasts: list[float] = []
    replies = errors = 0

    async def run(visitor: Visitor) -> None:
        nonlocal replies, errors
        for _ in range(rounds):
            for text in SCRIPT:
                try:
                    first, last, count = await visitor.say(text)
                except (asyncio.TimeoutError, socketio.exceptions.SocketIOError):
                    errors += 1
                    continue
                firsts.append(first)
                lasts.append(last)
                replies += count

    start = time.perf_counter()
    await asyncio.gather(*(run(v) for v in visitors))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(v.client.disconnect() for v in visitors))
    return {
        "channel": "web (socket.io, long-polling clients)", "concurrency": len(visitors), "rounds": rounds,
        "messages": len(firsts), "bot_messages": replies, "errors": errors,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(firsts) / elapsed, 2),
        "first_reply_p50_ms": round(percentile(firsts, 0.50), 1) if firsts else None,
        "first_reply_p95_ms": round(percentile(firsts, 0.95), 1) if firsts else None,
        "turn_p50_ms": round(percentile(lasts, 0.50), 1) if lasts else None,
        "turn_p95_ms": round(percentile(lasts, 0.95), 1) if lasts else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("var/bench/socketio_load.json"))
    args = parser.parse_args()
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        var_dir = Path(tmp)
        crm = CRM(f"sqlite:///{var_dir / 'crm.sqlite3'}")
        crm.create_schema()
        seed(crm, customers=args.customers, seed=42)
        tokens: list[Optional[str]] = []
        for i in range(args.concurrency):
            if i % 2 == 0:
                uid = f"bench-{i}"
                crm.bind_identity("web", uid, 1 + (i // 2) % 2, f"bench-bind:{uid}")
                tokens.append(sign(uid, secret, ttl_s=7200))
            else:
                tokens.append(None)
        stack = isolated_stack(var_dir, crm.url, {"KEFU_WEB_SECRET": secret})
        stack.start(timeout=300)
        try:
            s = stack.settings
            asyncio.run(load(s.rasa_url, s.web_url, [tokens[0]], 1))  # warm-up
            results = asyncio.run(load(s.rasa_url, s.web_url, tokens, args.rounds))
        finally:
            stack.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
