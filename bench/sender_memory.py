"""The Rasa server's memory against how many different customers it has served.

    python -m bench.sender_memory [--senders 8000] [--concurrency 10] [--every 500]

Why: the soak (bench.soak) holds a few dozen conversations for 30 minutes, so
its RSS curve says little about the per-customer state a server keeps: the
kept trackers (``KEFU_TRACKER_CACHE_SIZE``, 1,000 senders), the folded
sessions (5,000), rate-limit buckets (100,000), the channels' reply caches.
Each is bounded by design; this run checks that the bounds hold as a whole,
by serving many more distinct customers than the largest cache a message
here fills, two messages each, and sampling RSS (psutil) every ``--every``
customers.  Memory must flatten once the caches are full: the growth per
customer over the last third of the run is the figure to read, against the
first third's.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

from bench.rest_load import _post, bound_senders, latency_percentiles, post_recorded, run_threads
from bench.stack import running_stack

#: A greeting opens the session; the points question runs a CRM-backed form
#: and leaves a tracker the store keeps (the first turn of a session is never kept).
TURN = ("你好", "我还有多少积分")


def _rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 2**20


def serve_distinct(url: str, senders: list[str], concurrency: int, every: int,
                   processes: dict[str, psutil.Process]) -> dict:
    """Each sender says TURN once; RSS of every process sampled after each `every` senders."""
    cursor = iter(senders)
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0
    done = 0

    def sample(served: int) -> dict:
        return {"senders": served, **{n: round(_rss_mb(p), 1) for n, p in processes.items()}}

    samples: list[dict] = [sample(0)]

    def worker() -> None:
        nonlocal errors, done
        session = requests.Session()
        while True:
            with lock:
                sender = next(cursor, None)
            if sender is None:
                return
            for text in TURN:
                if not post_recorded(session, url, sender, text, latencies, lock):
                    with lock:
                        errors += 1
            with lock:
                done += 1
                if done % every == 0:
                    samples.append(sample(done))

    start = time.perf_counter()
    run_threads([threading.Thread(target=worker) for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    return {"senders": len(senders), "messages": len(latencies), "errors": errors,
            "seconds": round(elapsed, 1), **latency_percentiles(latencies), "rss_mb": samples}


def growth_kb_per_sender(samples: list[dict], process: str, start: int, end: int) -> float:
    """RSS growth per customer served between two sample indexes, in kB."""
    a, b = samples[start], samples[end]
    return round(1024 * (b[process] - a[process]) / max(1, b["senders"] - a["senders"]), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as (stack, crm):
        url = f"{stack.settings.rasa_url}/webhooks/rest/webhook"
        _post(requests.Session(), url, "memory-warmup", TURN[1])
        senders = bound_senders(crm, "mem", args.senders)
        processes = {name: psutil.Process(stack.named[name].pid) for name in ("rasa", "actions")}
        result = serve_distinct(url, senders, args.concurrency, args.every, processes)
    samples = result["rss_mb"]
    third = max(1, (len(samples) - 1) // 3)
    result["growth_kb_per_sender"] = {
        name: {"first_third": growth_kb_per_sender(samples, name, 0, third),
               "last_third": growth_kb_per_sender(samples, name, len(samples) - 1 - third, len(samples) - 1)}
        for name in ("rasa", "actions")}
    text = json.dumps(result, indent=1, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
