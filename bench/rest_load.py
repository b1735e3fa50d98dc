"""REST round trips that run CRM-backed actions: throughput and latency with
N concurrent conversations, and flat latency for long-lived conversations.

    python -m bench.rest_load [--concurrency 10] [--rounds 20] [--rates 5,10,15]
    python -m bench.rest_load --url http://127.0.0.1:PORT --crm-url URL   (a running deployment)
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.stack import running_stack

# A realistic mix: most messages run a CRM-backed action, a few are FAQs.
SCRIPT = (
    "我的快递到哪了",            # identify + order_query_form + action_query_order
    "我还有多少积分",            # membership (CRM)
    "订单260101000001到哪了",    # specific order (CRM)
    "满多少包邮",                # FAQ (no CRM)
    "有什么推荐的吗",            # recommendation (CRM)
    "谢谢",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _post(session: requests.Session, url: str, sender: str, text: str) -> float:
    start = time.perf_counter()
    response = session.post(url, json={"sender": sender, "message": text}, timeout=60)
    response.raise_for_status()
    return (time.perf_counter() - start) * 1000


def post_recorded(session: requests.Session, url: str, sender: str, text: str,
                  latencies: list[float], lock: threading.Lock) -> bool:
    """One message; its latency appended to `latencies` (under `lock`); False when it failed."""
    try:
        ms = _post(session, url, sender, text)
    except requests.RequestException:
        return False
    with lock:
        latencies.append(ms)
    return True


def run_threads(threads: list[threading.Thread]) -> None:
    """Start every load thread, then wait for all of them."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def latency_percentiles(latencies: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 of latencies in ms, as every load report gives them."""
    return {f"p{q}_ms": round(percentile(latencies, q / 100), 1) for q in (50, 95, 99)}


def bound_senders(crm, prefix: str, count: int) -> list[str]:
    """`count` new REST senders, bound to the two demo customers in turn (so CRM actions run)."""
    senders = []
    for i in range(count):
        sender = f"{prefix}-{uuid.uuid4().hex[:8]}"
        crm.bind_identity("rest", sender, 1 + i % 2, f"bench-bind:{sender}")
        senders.append(sender)
    return senders


def load(stack, crm, concurrency: int, rounds: int) -> dict:
    return load_url(f"{stack.settings.rasa_url}/webhooks/rest/webhook", crm, concurrency, rounds)


def load_url(url: str, crm, concurrency: int, rounds: int) -> dict:
    """The REST load against any base URL (one Rasa server, or nginx in front of several)."""
    senders = bound_senders(crm, "bench", concurrency)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker(sender: str) -> None:
        nonlocal errors
        session = requests.Session()
        for r in range(rounds):
            for text in SCRIPT:
                if not post_recorded(session, url, sender, text, latencies, lock):
                    with lock:
                        errors += 1

    # Warm-up: first message per process path.
    _post(requests.Session(), url, "bench-warmup", SCRIPT[0])
    threads = [threading.Thread(target=worker, args=(s,)) for s in senders]
    start = time.perf_counter()
    run_threads(threads)
    elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency, "messages": len(latencies), "errors": errors,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(latencies) / elapsed, 1),
        **latency_percentiles(latencies),
    }


def open_loop(url: str, crm, conversations: int, rate: float, messages_each: int, seed: int = 7) -> dict:
    """Customers who write at their own pace: capacity at a latency, not at saturation.

    The closed-loop `load_url` sends each customer's next message the moment
    the previous answer arrives, so it measures the server saturated; its
    latency is mostly queueing (by Little's law, 10 such customers at 10
    msg/s wait ~1 s each whatever the server does).  Here messages arrive at
    `rate` per second in all (a Poisson process split over `conversations`
    customers), whether or not the server is keeping up.  A customer still
    waits for an answer before sending again, and latency is counted from when
    the message was *due*, so a backlog shows in the figures instead of
    slowing the generator down (no coordinated omission).
    """
    import random

    senders = bound_senders(crm, "bench-open", conversations)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def customer(index: int, sender: str) -> None:
        nonlocal errors
        session = requests.Session()
        draw = random.Random(seed * 1000 + index)
        due = start
        for k in range(messages_each):
            due += draw.expovariate(rate / conversations)
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                session.post(url, json={"sender": sender, "message": SCRIPT[k % len(SCRIPT)]},
                             timeout=60).raise_for_status()
                with lock:
                    latencies.append((time.perf_counter() - due) * 1000)
            except requests.RequestException:
                with lock:
                    errors += 1

    threads = [threading.Thread(target=customer, args=(i, s)) for i, s in enumerate(senders)]
    run_threads(threads)
    elapsed = time.perf_counter() - start
    return {
        "conversations": conversations, "offered_per_second": rate, "messages": len(latencies),
        "errors": errors, "messages_per_second": round(len(latencies) / elapsed, 1),
        **latency_percentiles(latencies),
    }


def long_conversation(stack, history: int, probes: int) -> dict:
    """A returning customer with `history` messages in earlier sessions vs a new one."""
    s = stack.settings
    url = f"{s.rasa_url}/webhooks/rest/webhook"
    session = requests.Session()
    veteran = f"bench-veteran-{uuid.uuid4().hex[:6]}"
    for i in range(history):
        _post(session, url, veteran, "满多少包邮" if i % 2 else "你好")
        if i % 50 == 49:  # a new session every 50 messages, as months of chats would
            requests.post(f"{s.rasa_url}/conversations/{veteran}/tracker/events",
                          params={"token": s.rasa_token},
                          json=[{"event": "session_started"}, {"event": "action", "name": "action_listen"}],
                          timeout=30).raise_for_status()
    requests.post(f"{s.rasa_url}/conversations/{veteran}/tracker/events",
                  params={"token": s.rasa_token},
                  json=[{"event": "session_started"}, {"event": "action", "name": "action_listen"}],
                  timeout=30).raise_for_status()

    def measure(sender: str) -> float:
        # Both customers send the same `probes` messages in one fresh session, so
        # the only difference is the veteran's 300 messages in earlier sessions.
        samples = [_post(session, url, sender, "满多少包邮") for _ in range(probes)]
        return statistics.median(samples)

    new_ms = measure(f"bench-new-{uuid.uuid4().hex[:8]}")
    veteran_ms = measure(veteran)
    return {"history_messages": history, "new_customer_median_ms": round(new_ms, 1),
            "returning_customer_median_ms": round(veteran_ms, 1),
            "ratio": round(veteran_ms / new_ms, 2)}


def rasa_rss_mb(stack) -> float:
    """Resident memory of the Rasa server with all its workers (each holds a model)."""
    import psutil

    main = psutil.Process(stack.named["rasa"].pid)
    return round(sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--history", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("var/bench/rest_load.json"))
    parser.add_argument("--url", help="base URL of a running deployment (no stack is started)")
    parser.add_argument("--crm-url", help="that deployment's CRM database (to bind the bench senders)")
    parser.add_argument("--rasa-workers", type=int, default=1,
                        help="Sanic workers of the Rasa server (KEFU_RASA_WORKERS; above 1 with a private Redis)")
    parser.add_argument("--rates", default="5,10,15,20",
                        help="then offer these total rates (msg/s, comma-separated; \"\" for none) open-loop, "
                             "--concurrency customers, 60 messages each")
    args = parser.parse_args()
    if args.url:
        from crm_adapter import CRM

        if not args.crm_url:
            parser.error("--url needs --crm-url")
        crm = CRM(args.crm_url)
        try:
            url = f"{args.url.rstrip('/')}/webhooks/rest/webhook"
            results = {"load": load_url(url, crm, args.concurrency, args.rounds),
                       "open_loop": [open_loop(url, crm, args.concurrency, float(rate), messages_each=60)
                                     for rate in args.rates.split(",") if rate.strip()]}
        finally:
            crm.dispose()
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), rasa_workers=args.rasa_workers) as (stack, crm):
        results = {"load": load(stack, crm, args.concurrency, args.rounds),
                   "long_conversation": long_conversation(stack, args.history, probes=30)}
        url = f"{stack.settings.rasa_url}/webhooks/rest/webhook"
        results["open_loop"] = [open_loop(url, crm, args.concurrency, float(rate), messages_each=60)
                                for rate in args.rates.split(",") if rate.strip()]
        results["rasa_workers"] = args.rasa_workers
        results["rasa_rss_mb"] = rasa_rss_mb(stack)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
