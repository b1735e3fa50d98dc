"""Customer-directory costs: per-call latency of each backend and outbox drain rate.

    python -m bench.directory_latency [--rounds 200] [--backlog 200]

The remote backends run against the fake servers from tests/fakes on
127.0.0.1, so the figures are Kefu's own overhead (HTTP client, JSON, the
searches each operation needs), not a real CRM's network round trips: add
the company CRM's round-trip time × the requests per call (printed) for an
estimate. Results go to var/bench/directory_latency.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from crm_adapter import CRM
from crm_adapter.config import repo_root
from crm_adapter.directory import CustomerDirectory, SqlDirectory
from crm_adapter.outbox import Outbox
from crm_adapter.seed import seed
from tests.crm_adapter.remote_fixtures import complaint, rest_directory, seed_rest, seed_zoho, zoho_directory
from tests.fakes.base import FakeServer
from tests.fakes.rest_crm_server import FakeRestCrm
from tests.fakes.zoho_server import FakeZoho


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


def _time(call: Callable[[int], Any], rounds: int, fake: FakeServer | None) -> dict[str, Any]:
    samples = []
    before = len(fake.requests) if fake else 0
    for i in range(rounds):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    result: dict[str, Any] = _ms(samples)
    if fake is not None:
        result["requests_per_call"] = round((len(fake.requests) - before) / rounds, 2)
    return result


def measure(directory: CustomerDirectory, fake: FakeServer | None, rounds: int) -> dict[str, Any]:
    directory.get_customer(1)  # token, connections
    return {
        "get_customer": _time(lambda i: directory.get_customer(1 + i % 3), rounds, fake),
        "find_customer_by_phone": _time(lambda i: directory.find_customer_by_phone("13912345678"), rounds, fake),
        "create_case": _time(
            lambda i: directory.create_case(2, complaint(), f"bench:{time.time_ns()}:{i}", sender_id="bench"),
            min(rounds, 900), fake),
        "add_note": _time(
            lambda i: directory.add_note(3, "faq", "问运费", f"bench-note:{time.time_ns()}:{i}",
                                         channel="wechat", sender_id="bench"), rounds, fake),
    }


def drain_rate(db: CRM, fake: FakeZoho, backlog: int) -> dict[str, Any]:
    outbox = Outbox(db.engine, zoho_directory(fake))
    port = fake.port
    fake.stop()
    outbox.submit("create_case", {"customer_id": 1, "complaint": complaint(), "sender_id": "b"}, "drain:0")
    start = time.perf_counter()
    for i in range(1, backlog):  # queued without network: an older entry is waiting
        outbox.submit("create_case", {"customer_id": 1, "complaint": complaint(), "sender_id": "b"}, f"drain:{i}")
    queue_s = time.perf_counter() - start
    fake.start(port)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE outbox SET next_attempt_at = '2000-01-01 00:00:00'")
    start = time.perf_counter()
    report = outbox.drain()
    drain_s = time.perf_counter() - start
    return {
        "backlog": backlog,
        "queue_ms_per_entry": round(queue_s / (backlog - 1) * 1000, 2),
        "drained": report.delivered,
        "drain_entries_per_s": round(report.delivered / drain_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        crm = CRM(f"sqlite:///{Path(tmp) / 'crm.sqlite3'}")
        seed(crm, customers=60, seed=7)
        results["sql"] = measure(SqlDirectory(crm), None, args.rounds)
        zoho = FakeZoho().start()
        seed_zoho(zoho)
        results["zoho"] = measure(zoho_directory(zoho), zoho, args.rounds)
        rest = FakeRestCrm().start()
        seed_rest(rest)
        results["rest"] = measure(rest_directory(rest), rest, args.rounds)
        results["outbox_zoho"] = drain_rate(crm, zoho, args.backlog)
        zoho.stop()
        rest.stop()
        crm.dispose()
    out = repo_root() / "var" / "bench" / "directory_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
