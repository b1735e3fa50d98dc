"""REST load through nginx in front of several Rasa servers, optionally killing one mid-load.

    python -m bench.scaleout [--concurrency 10] [--rounds 3] [--kill-after 20] [--attach]

Without --attach it starts the topology (scripts/scaleout.sh start), runs the
load and stops everything; with --attach it uses the running one and leaves it
running.  Each conversation is the REST mix of bench/rest_load.py repeated
`--rounds` times, then a two-message complaint (a CRM write keyed by the
message id).

The client's answer to a 502/503/504 or a dropped connection: re-send the
same message with the same `message_id`, after a second, for up to 90 s.
nginx itself never re-sends a POST that reached a server (it cannot know
whether the dead server processed it); the REST channel of this topology
(bot/channels/rest.py) replays the stored answer when the turn was saved,
and processes it otherwise, with the same CRM idempotency keys.

Checks after the load (the PASS/FAIL summary):
* every message got an HTTP 200 answer (after retries), none of them empty;
* every sender's tracker in PostgreSQL is a valid event sequence: it loads as
  a Rasa tracker, each turn ends in action_listen, and the user messages are
  exactly the ones sent, in order, each once;
* no duplicate CRM writes: exactly one complaint per sender.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import psutil
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.rest_load import SCRIPT, percentile, run_threads
from bot.scaleout import TRACKER_DB, Topology
from bot.settings import ROOT

COMPLAINT = ("我要投诉，快递太慢了", "物流太慢，等了一个星期还没到，太失望了")
RETRY_STATUSES = {502, 503, 504}
RETRY_FOR_S = 90.0


@dataclass
class Sent:
    sender: str
    message_id: str
    text: str
    status: Optional[int] = None
    answer: list = field(default_factory=list)
    attempts: int = 0
    ms: float = 0.0


def send(session: requests.Session, url: str, sent: Sent) -> None:
    """One message, re-sent with the same id while nginx reports a dead upstream."""
    start = time.perf_counter()
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        sent.attempts += 1
        try:
            response = session.post(url, json={"sender": sent.sender, "message": sent.text,
                                               "message_id": sent.message_id}, timeout=120)
            sent.status = response.status_code
            if response.status_code == 200:
                sent.answer = response.json()
                break
            if response.status_code not in RETRY_STATUSES:
                break
        except requests.ConnectionError:
            sent.status = None
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    sent.ms = (time.perf_counter() - start) * 1000


def run_load(url: str, crm_url: str, concurrency: int, rounds: int,
             kill: Optional[tuple[Topology, str, float]] = None) -> tuple[dict[str, Any], list[Sent]]:
    from crm_adapter import CRM

    crm = CRM(crm_url)
    senders = []
    try:
        for i in range(concurrency):
            sender = f"scale-{uuid.uuid4().hex[:8]}"
            crm.bind_identity("rest", sender, 1 + i % 2, f"bench-bind:{sender}")
            senders.append(sender)
    finally:
        crm.dispose()
    messages = list(SCRIPT) * rounds + list(COMPLAINT)
    plan = {s: [Sent(s, f"{s}-{n}", t) for n, t in enumerate(messages)] for s in senders}
    send(requests.Session(), url, Sent("scale-warmup", uuid.uuid4().hex, SCRIPT[0]))

    def worker(sender: str) -> None:
        session = requests.Session()
        for sent in plan[sender]:
            send(session, url, sent)

    killed: dict[str, Any] = {}
    if kill:
        topology, name, after = kill

        def killer() -> None:
            time.sleep(after)
            pid = topology.state["procs"][name]
            os.kill(pid, signal.SIGKILL)
            killed.update({"process": name, "pid": pid, "at_s": after})

        threading.Thread(target=killer, daemon=True).start()
    sampler = CpuSampler(kill[0] if kill else Topology())
    threads = [threading.Thread(target=worker, args=(s,)) for s in senders]
    start = time.perf_counter()
    sampler.begin()
    run_threads(threads)
    elapsed = time.perf_counter() - start
    cpu = sampler.end(elapsed)
    done = [m for msgs in plan.values() for m in msgs]
    ok = [m.ms for m in done if m.status == 200]
    summary = {
        "senders": concurrency, "messages": len(done), "answered": len(ok),
        "retried": sum(1 for m in done if m.attempts > 1), "seconds": round(elapsed, 1),
        "messages_per_second": round(len(ok) / elapsed, 1),
        "p50_ms": round(percentile(ok, 0.50), 1) if ok else None,
        "p95_ms": round(percentile(ok, 0.95), 1) if ok else None,
        "p99_ms": round(percentile(ok, 0.99), 1) if ok else None,
        "cpu": cpu, "killed": killed or None,
    }
    return summary, done


class CpuSampler:
    """CPU used by each process of the topology during the load (100 % = one core)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.before: dict[str, float] = {}

    def _times(self) -> dict[str, float]:
        out = {}
        for name, pid in self.topology.state.get("procs", {}).items():
            try:
                proc = psutil.Process(pid)
                times = [proc.cpu_times()] + [c.cpu_times() for c in proc.children(recursive=True)]
                out[name] = sum(t.user + t.system for t in times)
            except psutil.Error:
                pass
        return out

    def begin(self) -> None:
        self.before = self._times()
        psutil.cpu_percent(None)

    def end(self, elapsed: float) -> dict[str, Any]:
        after = self._times()
        per = {name: round(100 * (after[name] - self.before.get(name, 0.0)) / elapsed)
               for name in after if name in self.before}
        return {"machine_percent_of_all_cores": psutil.cpu_percent(None), "cores": psutil.cpu_count(),
                "process_percent_of_one_core": dict(sorted(per.items(), key=lambda kv: -kv[1]))}


def check(done: list[Sent], pg_url: str) -> dict[str, Any]:
    """Answers, trackers and CRM writes; each entry is (passed, detail)."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    results: dict[str, Any] = {}
    unanswered = [m for m in done if m.status != 200]
    empty = [m for m in done if m.status == 200 and not m.answer]
    results["every message answered"] = (not unanswered and not empty,
                                         f"{len(unanswered)} without a 200, {len(empty)} empty answers")

    by_sender: dict[str, list[Sent]] = defaultdict(list)
    for m in done:
        by_sender[m.sender].append(m)
    domain = Domain.load(str(ROOT / "domain.yml"))
    tracker_url = make_url(pg_url).set(database=TRACKER_DB)
    engine = create_engine(tracker_url, future=True)
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            for sender, sent in by_sender.items():
                rows = conn.execute(text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"),
                                    {"s": sender}).scalars().all()
                events = [json.loads(r) for r in rows]
                try:
                    DialogueStateTracker.from_dict(sender, events, domain.slots)
                except Exception as exc:  # any failure to load is a corrupted tracker
                    problems.append(f"{sender}: does not load ({type(exc).__name__})")
                    continue
                ids = [e.get("message_id") for e in events if e.get("event") == "user"]
                if ids != [m.message_id for m in sent]:
                    dup = [i for i, c in Counter(ids).items() if c > 1]
                    problems.append(f"{sender}: user messages {len(ids)} stored vs {len(sent)} sent"
                                    + (f", duplicated {dup}" if dup else ""))
                turn_open = False
                for e in events:
                    if e.get("event") == "user":
                        if turn_open:
                            problems.append(f"{sender}: a turn without action_listen before {e.get('message_id')}")
                        turn_open = True
                    elif e.get("event") == "action" and e.get("name") == "action_listen":
                        turn_open = False
                if turn_open:
                    problems.append(f"{sender}: last turn not finished")
    finally:
        engine.dispose()
    results["trackers valid, each message once"] = (not problems, "; ".join(problems[:5]) or
                                                    f"{len(by_sender)} trackers checked")

    from crm_adapter.models import Complaint

    crm_engine = create_engine(pg_url, future=True)
    try:
        with crm_engine.connect() as conn:
            counts = dict(conn.execute(
                select(Complaint.sender_id, func.count()).where(Complaint.sender_id.in_(list(by_sender)))
                .group_by(Complaint.sender_id)).all())
    finally:
        crm_engine.dispose()
    wrong = {s: counts.get(s, 0) for s in by_sender if counts.get(s, 0) != 1}
    results["no duplicate CRM writes (one complaint per sender)"] = (
        not wrong, f"senders with a count other than 1: {wrong}" if wrong else
        f"{sum(counts.values())} complaints for {len(by_sender)} senders")
    return results


def killed_mid_load(summary: dict[str, Any]) -> tuple[bool, str]:
    """Whether the kill fell inside the load: a load that ends first proves nothing about failover."""
    killed = summary.get("killed")
    if not killed:
        return False, f"no server was killed: the load ended after {summary['seconds']} s"
    ok = summary["seconds"] > killed["at_s"] + 1.0
    return ok, f"{killed['process']} killed {killed['at_s']} s into a load of {summary['seconds']} s"


def report(summary: dict[str, Any], checks: Optional[dict[str, Any]]) -> bool:
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    if checks is None:
        return True
    passed = all(ok for ok, _ in checks.values())
    for name, (ok, detail) in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print("SCALE-OUT CHECK:", "PASS" if passed else "FAIL")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kill-after", type=float, default=None,
                        help="SIGKILL rasa-1 this many seconds into the load, then check")
    parser.add_argument("--check", action="store_true", help="run the checks even without a kill")
    parser.add_argument("--attach", action="store_true", help="use the running topology, leave it running")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "scaleout.json")
    args = parser.parse_args()
    script = str(ROOT / "scripts" / "scaleout.sh")
    if not args.attach:
        subprocess.run([script, "start"], check=True, cwd=ROOT)
    try:
        topology = Topology()
        if not topology.state.get("procs"):
            raise SystemExit("the scale-out topology is not running (scripts/scaleout.sh start)")
        kill = (topology, "rasa-1", args.kill_after) if args.kill_after is not None else None
        summary, done = run_load(topology.rest_url, topology.state["pg_url"], args.concurrency, args.rounds, kill)
        checks = check(done, topology.state["pg_url"]) if (kill or args.check) else None
        if kill and checks is not None:
            checks = {"a server killed mid-load": killed_mid_load(summary), **checks}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"load": summary, "checks": checks}, ensure_ascii=False, indent=2))
        passed = report(summary, checks)
        if kill and args.attach and not topology.alive("rasa-1"):
            # Leave the topology as it was found.  Only a dead server is
            # restarted: a restart of one the kill missed would leave the old
            # process running, unknown to `scaleout.sh stop` (session 14 found one).
            topology.restart_rasa(1)
    finally:
        if not args.attach:
            subprocess.run([script, "stop"], cwd=ROOT)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
