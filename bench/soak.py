"""Soak: mixed load for a long while, memory of every process, then reconciliation.

    python -m bench.soak [--minutes 30] [--rest 4] [--web 4] [--wechat 4]     (make soak)

One stack on 127.0.0.1 (bot.run.isolated_stack, SQLite under var/bench/soak-run/,
the care scheduler running) takes, for `--minutes`:

* REST customers bound to CRM customers running rest_load's script,
  website visitors on socket.io (signed in) running socketio_load's script,
  WeChat openids (AES) running wechat_load's script, each with a think time;
* a new anonymous REST customer filing a complaint every `--complaint-every` s
  and one asking for a person every `--handoff-every` s;
* a care campaign due two minutes into the load (points expiry, service),
  whose audience is the web and WeChat customers, so the scheduler pushes into
  live chats while they talk;  (inside the care quiet hours, 21:00-09:00 China
  time, the messages wait as queued for the morning instead: the
  reconciliation accepts that as retrying, but the push is then not exercised);
* a simulated agent on the desk's HTTP API (tests/desk_client.py) that claims
  every waiting chat, replies and resolves it.

Every 10 s it samples RSS and CPU of each stack process (psutil, children
included).  Every message sent is logged to var/bench/soak_sent.jsonl, and at the end
bench.reconcile compares it with the CRM and the tracker store.  Writes
var/bench/soak.json; exits with the reconciliation's status.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import sys
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
import requests
import socketio
import yaml
from sqlalchemy import update

from bench import reconcile
from bench.rest_load import SCRIPT as REST_SCRIPT
from bench.rest_load import percentile
from bench.socketio_load import SCRIPT as WEB_SCRIPT
from bench.wechat_load import SCRIPT as WECHAT_SCRIPT
from bot import memtrace
from bot.allocator import running_on_jemalloc
from bot.channels.web_token import sign
from bot.run import Stack, isolated_stack
from bot.settings import ROOT
from crm_adapter import CRM
from crm_adapter.models import Customer
from crm_adapter.seed import seed
from crm_adapter.views import CHINA_TZ
from tests.channels.wechat_peer import WeChatPeer, new_aes_key, new_openid
from tests.desk_client import PASSWORD, DeskClient
from tests.fakes.wechat_api import FakeWeChatApi

SAMPLE_EVERY_S = 10.0
COMPLAINT = (("我要投诉", None), ("物流", None), ("快递好几天没更新物流信息了，麻烦帮我查一下", None),
             ("13912345678", "complaint"))
AGENT_REPLY = "您好，我是客服小王，已经看到您的问题，马上为您处理。"
CARE_TEXT = "{{ name }}，您有{{ points_expiring }}积分将于{{ expire_date }}到期，记得使用哦。"
SOAK_POINTS = 900_000  # only the soak's customers have this many points expiring


class SentLog:
    """The JSONL log bench.reconcile reads, plus latency per channel; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("w", encoding="utf-8")
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.kinds: dict[str, int] = {}

    def record(self, sender: str, channel: str, kind: str, text: str, expect: Optional[str] = None,
               ms: Optional[float] = None) -> None:
        line = json.dumps({"sender": sender, "channel": channel, "kind": kind, "text": text, "expect": expect},
                          ensure_ascii=False)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if ms is not None:
                self.latency.setdefault(channel, []).append(ms)

    def error(self, channel: str) -> None:
        with self.lock:
            self.errors[channel] = self.errors.get(channel, 0) + 1

    def close(self) -> None:
        self.file.close()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sent_by_kind": dict(self.kinds), "errors": dict(self.errors), "latency_ms": {}}
        for channel, values in self.latency.items():
            out["latency_ms"][channel] = {"n": len(values), "p50": round(percentile(values, 0.5), 1),
                                         "p95": round(percentile(values, 0.95), 1),
                                         "p99": round(percentile(values, 0.99), 1)}
        return out


class Sampler(threading.Thread):
    """RSS and CPU of every stack process (with children) every `every` seconds."""

    def __init__(self, stack: Stack, stop: threading.Event, every: float = SAMPLE_EVERY_S) -> None:
        super().__init__(daemon=True)
        self.stack, self.stop_event, self.every = stack, stop, every
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.procs = {name: psutil.Process(p.pid) for name, p in stack.named.items()}
        self.procs["load_generator"] = psutil.Process(os.getpid())
        self._cpu_seen: dict[int, psutil.Process] = {}

    def _tree(self, proc: psutil.Process) -> list[psutil.Process]:
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> None:
        row: dict[str, Any] = {"t_s": round(time.monotonic() - self.t0, 1)}
        for name, proc in self.procs.items():
            rss = cpu = 0.0
            for p in self._tree(proc):
                # cpu_percent needs the same Process object between calls.
                p = self._cpu_seen.setdefault(p.pid, p)
                try:
                    rss += p.memory_info().rss
                    cpu += p.cpu_percent(None)
                except psutil.NoSuchProcess:
                    continue
            row[name] = {"rss_mb": round(rss / 2**20, 1), "cpu_pct": round(cpu, 1)}
        self.samples.append(row)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.every)


def memory_trend(samples: list[dict[str, Any]], warm_up_s: float = 60.0) -> dict[str, Any]:
    """Per process: RSS at start and end, max, and the least-squares slope (MB/hour).

    "Start" is the first sample after `warm_up_s` (a process that was just
    restarted, like the scheduler, is still importing before that); the
    slopes are over the samples after it, and over the second half of those
    alone: caches filling make the first minutes climb, unbounded growth
    keeps climbing.
    """
    out: dict[str, Any] = {}
    names = [k for k in samples[0] if k != "t_s"] if samples else []
    for name in names:
        every = [(s["t_s"], s[name]["rss_mb"]) for s in samples if name in s]
        points = [p for p in every if p[0] >= warm_up_s] or every
        half = points[len(points) // 2:]
        cpu = [s[name]["cpu_pct"] for s in samples[1:] if name in s]
        out[name] = {"rss_first_sample_mb": every[0][1], "rss_start_mb": points[0][1],
                     "rss_end_mb": points[-1][1], "rss_max_mb": max(v for _, v in every),
                     "slope_mb_per_h": _slope(points), "slope_second_half_mb_per_h": _slope(half),
                     "cpu_mean_pct": round(sum(cpu) / len(cpu), 1) if cpu else None}
    return out


def _slope(points: list[tuple[float, float]]) -> Optional[float]:
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if not var:
        return None
    return round(sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600, 1)


def _loop(stop: threading.Event, think: tuple[float, float], body: Callable[[], None]) -> None:
    while not stop.is_set():
        body()
        stop.wait(random.uniform(*think))


def rest_customer(url: str, sender: str, log: SentLog, stop: threading.Event, think: tuple[float, float]) -> None:
    session = requests.Session()
    script = itertools.cycle(REST_SCRIPT)

    def one() -> None:
        text = next(script)
        _rest_say(session, url, sender, text, log)

    _loop(stop, think, one)


def _rest_say(session: requests.Session, url: str, sender: str, text: str, log: SentLog,
              kind: str = "chat", expect: Optional[str] = None) -> bool:
    start = time.perf_counter()
    try:
        response = session.post(url, json={"sender": sender, "message": text}, timeout=120)
        response.raise_for_status()
    except requests.RequestException:
        log.error("rest")
        return False
    log.record(sender, "rest", kind, text, expect, (time.perf_counter() - start) * 1000)
    return True


def complainers(url: str, log: SentLog, stop: threading.Event, every: float) -> None:
    """A new anonymous customer files a complaint every `every` seconds."""
    while not stop.wait(every):
        session, sender = requests.Session(), f"soak-complaint-{uuid.uuid4().hex[:8]}"
        for text, expect in COMPLAINT:
            if not _rest_say(session, url, sender, text, log, "complaint", expect):
                break


def handoffs(url: str, log: SentLog, stop: threading.Event, every: float) -> None:
    """A new customer asks for a person every `every` seconds, and writes again while waiting."""
    while not stop.wait(every):
        session, sender = requests.Session(), f"soak-handoff-{uuid.uuid4().hex[:8]}"
        if _rest_say(session, url, sender, "转人工", log, "handoff", "escalation"):
            stop.wait(2)
            _rest_say(session, url, sender, "还要等多久", log, "handoff")


def wechat_customer(peer: WeChatPeer, openid: str, log: SentLog, stop: threading.Event,
                    think: tuple[float, float]) -> None:
    script = itertools.cycle(WECHAT_SCRIPT)

    def one() -> None:
        text = next(script)
        start = time.perf_counter()
        try:
            answer = peer.say(openid, text, aes=True)
        except requests.RequestException:
            log.error("wechat")
            return
        if answer.status != 200:
            log.error("wechat")
            return
        log.record(openid, "wechat", "chat", text, None, (time.perf_counter() - start) * 1000)

    _loop(stop, think, one)


def web_visitors(rasa_url: str, origin: str, tokens: list[str], log: SentLog, stop: threading.Event,
                 think: tuple[float, float]) -> None:
    """socket.io visitors, connected the whole run (so care pushes reach them), in one event loop."""

    async def visitor(token: str) -> None:
        client = socketio.AsyncClient(reconnection=True)
        inbox: asyncio.Queue = asyncio.Queue()
        confirm: asyncio.Queue = asyncio.Queue()
        client.on("bot_uttered", inbox.put)
        client.on("session_confirm", confirm.put)
        for attempt in range(5):  # a loaded server may refuse the first polling handshake
            try:
                await client.connect(rasa_url, headers={"Origin": origin}, transports=["polling"],
                                     socketio_path="/socket.io", wait_timeout=30)
                await client.emit("session_request", {"session_id": None})
                session_id = await asyncio.wait_for(confirm.get(), 30)
                break
            except (socketio.exceptions.SocketIOError, asyncio.TimeoutError):
                log.error("web_connect")
                with contextlib.suppress(Exception):
                    await client.disconnect()
                await asyncio.sleep(5)
        else:
            return
        i = 0
        try:
            while not stop.is_set():
                text = WEB_SCRIPT[i % len(WEB_SCRIPT)]
                i += 1
                while not inbox.empty():  # care pushes and late parts of the last answer
                    inbox.get_nowait()
                start = time.perf_counter()
                try:
                    await client.emit("user_uttered", {"message": text, "session_id": session_id,
                                                       "customData": {"token": token}})
                except socketio.exceptions.SocketIOError:
                    log.error("web")  # disconnected: wait for the client to reconnect, never spin
                    await asyncio.sleep(random.uniform(*think))
                    continue
                try:
                    await asyncio.wait_for(inbox.get(), 120)
                    log.record(session_id, "web", "chat", text, None, (time.perf_counter() - start) * 1000)
                except asyncio.TimeoutError:
                    log.record(session_id, "web", "chat", text)  # sent; reconcile judges the answer
                    log.error("web_no_reply")
                await asyncio.sleep(random.uniform(*think))
        finally:
            await asyncio.sleep(3)  # let the last answer land before the socket goes
            await client.disconnect()

    async def everyone() -> None:
        # One visitor's failure must not end the others' load.
        for outcome in await asyncio.gather(*(visitor(t) for t in tokens), return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("web_visitor_failed")

    asyncio.run(everyone())


def agent(desk_url: str, log: SentLog, stop: threading.Event, counts: dict[str, int]) -> None:
    """Claims every waiting chat, replies once and resolves it, through the desk's HTTP API."""
    client = DeskClient(desk_url)
    client.login("soak-agent").raise_for_status()
    while not stop.wait(1.0):
        try:
            queue = client.get("/desk/api/queue").json()["conversations"]
        except (requests.RequestException, ValueError, KeyError):
            counts["errors"] += 1
            continue
        for chat in queue:
            if chat["status"] != "pending":
                continue
            try:
                if not client.act(chat["id"], "claim").ok:
                    counts["errors"] += 1
                    continue
                if client.act(chat["id"], "reply", {"text": AGENT_REPLY}).ok:
                    log.record(chat["sender_id"], chat["channel"], "agent_reply", AGENT_REPLY, "agent_reply")
                else:
                    counts["errors"] += 1
                counts["resolved"] += client.act(chat["id"], "resolve").ok
            except requests.RequestException:
                counts["errors"] += 1


def care_campaign(path: Path, start_in: timedelta) -> str:
    """A points-expiry campaign due `start_in` from now (China time); returns its run time."""
    at = (datetime.now(CHINA_TZ) + start_in).strftime("%H:%M")
    path.write_text(yaml.safe_dump({"campaigns": [{
        "name": "soak_points", "title": "积分到期提醒（压测）", "enabled": True, "run_at": at,
        "audience": "points_expiry", "params": {"days_before": 30, "min_points": SOAK_POINTS},
        "purpose": "service", "valid_days": 1, "variants": {"A": CARE_TEXT}}]}, allow_unicode=True))
    return at


def prepare_customers(crm: CRM, ids: list[int]) -> None:
    """The soak's web and WeChat customers are the care campaign's whole audience."""
    with crm.engine.begin() as conn:
        conn.execute(update(Customer.__table__).where(Customer.id.in_(ids))
                     .values(points_expiring=SOAK_POINTS, points_expire_at=date.today() + timedelta(days=10)))


MEMTRACE_WARM_UP_S = 120.0


def signal_memtrace(stack: Stack) -> None:
    """Ask the Rasa and action servers for a bot.memtrace report."""
    for name in ("rasa", "actions"):
        proc = stack.named.get(name)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGUSR2)


def memtrace_signals(stack: Stack, stop: threading.Event, every_s: float) -> None:
    """Baseline report after the warm-up (models loaded, caches warm), then periodic ones."""
    if stop.wait(MEMTRACE_WARM_UP_S):
        return
    signal_memtrace(stack)
    while not stop.wait(every_s):
        signal_memtrace(stack)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rest", type=int, default=4, help="REST customers talking all the time")
    parser.add_argument("--web", type=int, default=4, help="socket.io visitors")
    parser.add_argument("--wechat", type=int, default=4, help="WeChat openids")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 4.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--complaint-every", type=float, default=20.0)
    parser.add_argument("--handoff-every", type=float, default=30.0)
    parser.add_argument("--care-after", type=float, default=2.0, help="minutes until the care campaign is due")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench" / "soak-run")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "soak.json")
    parser.add_argument("--memtrace", type=Path, default=None,
                        help="folder for bot.memtrace reports of the Rasa and action servers, taken "
                             "after the warm-up, every --memtrace-every minutes and at the end")
    parser.add_argument("--memtrace-every", type=float, default=10.0)
    args = parser.parse_args(argv)
    think = tuple(args.think)

    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    crm = CRM(f"sqlite:///{args.dir / 'crm.sqlite3'}")
    crm.create_schema()
    seed(crm, customers=args.customers, seed=42)
    crm.desk.create_staff("soak-agent", "压测客服", "agent", PASSWORD, max_open=50)
    web_secret = secrets.token_urlsafe(32)
    token, appid, app_secret, aes_key = secrets.token_hex(8), "wxsoak00000000001", secrets.token_hex(16), new_aes_key()
    first = 100  # seeded customers 100.. are the soak's bound customers
    rest_senders, web_tokens, openids, audience = [], [], [], []
    for i in range(args.rest):
        sender = f"soak-rest-{i}-{uuid.uuid4().hex[:6]}"
        crm.bind_identity("rest", sender, first + i, f"soak-bind:{sender}")
        rest_senders.append(sender)
    for i in range(args.web):
        cid, uid = first + args.rest + i, f"soak-web-{i}-{uuid.uuid4().hex[:6]}"
        crm.bind_identity("web", uid, cid, f"soak-bind:{uid}")
        web_tokens.append(sign(uid, web_secret, ttl_s=int(args.minutes * 60) + 3600))
        audience.append(cid)
    for i in range(args.wechat):
        cid, openid = first + args.rest + args.web + i, new_openid()
        crm.bind_identity("wechat", openid, cid, f"soak-bind:{openid}")
        openids.append(openid)
        audience.append(cid)
    prepare_customers(crm, audience)
    campaigns = args.dir / "campaigns.yml"
    care_campaign(campaigns, timedelta(hours=12))  # placeholder until the stack is up
    # The stack's children inherit os.environ (Settings.child_env).
    os.environ.update({"KEFU_CARE_CAMPAIGNS": str(campaigns), "KEFU_DESK_HOURS": "00:00-24:00",
                       "KEFU_CARE_DELIVER_SECONDS": "15"})
    if args.memtrace:
        os.environ[memtrace.ENV] = str(args.memtrace.resolve())

    sent_path = args.out.with_name(args.out.stem + "_sent.jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = SentLog(sent_path)
    agent_counts = {"resolved": 0, "errors": 0}
    with FakeWeChatApi(appid, app_secret) as fake:
        stack = isolated_stack(args.dir, crm.url, {
            "KEFU_CARE_SCHEDULER": "1", "KEFU_WEB_SECRET": web_secret,
            "KEFU_WECHAT_TOKEN": token, "KEFU_WECHAT_APPID": appid, "KEFU_WECHAT_SECRET": app_secret,
            "KEFU_WECHAT_AES_KEY": aes_key, "KEFU_WECHAT_API_BASE": fake.base_url})
        stack.start(timeout=600)
        # The campaign falls due `--care-after` minutes into the load, however long
        # Rasa took to load: the scheduler reads campaigns.yml when it starts, so it
        # is restarted with the real time (which also hands its lease over once).
        run_at = care_campaign(campaigns, timedelta(minutes=args.care_after))
        stack.stop_process("scheduler")
        stack.start_process("scheduler")
        stop, sampler_stop = threading.Event(), threading.Event()
        try:
            s = stack.settings
            rest_url = f"{s.rasa_url}/webhooks/rest/webhook"
            peer = WeChatPeer(f"{s.rasa_url}/webhooks/wechat/webhook", token, appid, aes_key)
            sampler = Sampler(stack, sampler_stop)
            sampler.start()
            if args.memtrace:
                threading.Thread(target=memtrace_signals, daemon=True,
                                 args=(stack, stop, args.memtrace_every * 60)).start()
            threads = [threading.Thread(target=rest_customer, args=(rest_url, sender, log, stop, think))
                       for sender in rest_senders]
            threads += [threading.Thread(target=wechat_customer, args=(peer, o, log, stop, think)) for o in openids]
            threads.append(threading.Thread(target=complainers, args=(rest_url, log, stop, args.complaint_every)))
            threads.append(threading.Thread(target=handoffs, args=(rest_url, log, stop, args.handoff_every)))
            if web_tokens:
                threads.append(threading.Thread(target=web_visitors,
                                                args=(s.rasa_url, s.web_url, web_tokens, log, stop, think)))
            agent_stop = threading.Event()
            agent_thread = threading.Thread(target=agent, args=(s.desk_url, log, agent_stop, agent_counts))
            started = time.monotonic()
            for thread in [*threads, agent_thread]:
                thread.start()
            stop.wait(args.minutes * 60)
            if args.memtrace:
                # The last report, still under load.  Rasa's takes about a minute
                # (its loop stopped meanwhile): wait for both files.
                before = len(list(args.memtrace.glob("*.txt")))
                signal_memtrace(stack)
                deadline = time.monotonic() + 180
                while len(list(args.memtrace.glob("*.txt"))) < before + 2 and time.monotonic() < deadline:
                    time.sleep(1)
            stop.set()
            for thread in threads:
                thread.join()
            load_s = time.monotonic() - started
            # Let the agent drain the queue and the scheduler finish its round.
            time.sleep(20)
            agent_stop.set()
            agent_thread.join()
            sampler_stop.set()
            sampler.join()
            sampler.sample()
            rasa_allocator = "jemalloc" if running_on_jemalloc(stack.named["rasa"].pid) else "default"
        finally:
            stack.stop()
    log.close()

    report = reconcile.reconcile(crm.url, f"sqlite:///{args.dir / 'tracker.sqlite3'}",
                                 reconcile.read_sent(sent_path), require_resolved=True)
    crm.dispose()
    customer_messages = sum(v for k, v in log.kinds.items() if k != "agent_reply")
    results = {
        "command": "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "minutes": args.minutes, "load_seconds": round(load_s, 1),
        "concurrency": {"rest": args.rest, "web": args.web, "wechat": args.wechat,
                        "complaint_every_s": args.complaint_every, "handoff_every_s": args.handoff_every,
                        "think_s": think},
        "care_campaign_run_at_china": run_at,
        "customer_messages": customer_messages,
        "messages_per_second": round(customer_messages / load_s, 2),
        **log.summary(),
        "agent": agent_counts,
        "rasa_allocator": rasa_allocator,  # KEFU_MALLOC (bot/allocator.py)
        "memory": memory_trend(sampler.samples),
        "reconcile": report.as_dict(),
        "samples": sampler.samples,
    }
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "samples"}, ensure_ascii=False, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
