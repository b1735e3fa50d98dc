"""Load through the WeChat channel, encrypted (safe mode): messages/s and latency.

N concurrent openids (half bound to CRM customers) each send the script
`--rounds` times, AES-encrypted and signed the way WeChat does (wechatpy).
Latency is end to end as the customer sees it: the passive reply's round
trip, or — when the channel answered `success` because the bot was slower than
its budget — until the 客服消息 reached the fake WeChat API on 127.0.0.1.

    python -m bench.wechat_load [--concurrency 10] [--rounds 3]

Not a test: prints JSON and writes var/bench/wechat_load.json.
"""
from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import threading
import time
from pathlib import Path

from bench.rest_load import percentile, run_threads
from bot.run import isolated_stack
from crm_adapter import CRM
from crm_adapter.seed import seed
from tests.channels.wechat_peer import WeChatPeer, new_aes_key, new_openid
from tests.fakes.wechat_api import FakeWeChatApi

SCRIPT = (
    "你好",
    "我的快递到哪了",          # identify + order query (CRM) for bound customers
    "满多少包邮",              # FAQ
    "我还有多少积分",          # membership (CRM)
    "谢谢",
)


def load(peer: WeChatPeer, fake: FakeWeChatApi, crm: CRM, concurrency: int, rounds: int) -> dict:
    openids = []
    for i in range(concurrency):
        openid = new_openid()
        if i % 2 == 0:
            crm.bind_identity("wechat", openid, 1 + (i // 2) % 2, f"bench-bind:{openid}")
        openids.append(openid)
    latencies: list[float] = []
    late = errors = 0
    lock = threading.Lock()

    def worker(openid: str) -> None:
        nonlocal late, errors
        for _ in range(rounds):
            for text in SCRIPT:
                delivered_before = len(fake.delivered_to(openid))
                start = time.perf_counter()
                try:
                    answer = peer.say(openid, text, aes=True)
                except Exception:
                    with lock:
                        errors += 1
                    continue
                if answer.status != 200:
                    with lock:
                        errors += 1
                    continue
                if answer.body == "success":  # answered later by customer-service API
                    got = fake.wait_for(openid, delivered_before + 1, timeout=120)
                    with lock:
                        late += 1
                        if len(got) <= delivered_before:
                            errors += 1
                            continue
                ms = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(ms)

    peer.say(new_openid(), "满多少包邮", aes=True)  # warm-up
    threads = [threading.Thread(target=worker, args=(o,)) for o in openids]
    start = time.perf_counter()
    run_threads(threads)
    elapsed = time.perf_counter() - start
    return {
        "channel": "wechat (AES safe mode)", "concurrency": concurrency,
        "messages": len(latencies), "errors": errors, "answered_late_by_api": late,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 0.50), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("var/bench/wechat_load.json"))
    args = parser.parse_args()
    token, appid, secret, aes_key = secrets.token_hex(8), "wxbench0000000001", secrets.token_hex(16), new_aes_key()
    with tempfile.TemporaryDirectory() as tmp, FakeWeChatApi(appid, secret) as fake:
        var_dir = Path(tmp)
        crm = CRM(f"sqlite:///{var_dir / 'crm.sqlite3'}")
        crm.create_schema()
        seed(crm, customers=args.customers, seed=42)
        stack = isolated_stack(var_dir, crm.url, {
            "KEFU_WECHAT_TOKEN": token, "KEFU_WECHAT_APPID": appid, "KEFU_WECHAT_SECRET": secret,
            "KEFU_WECHAT_AES_KEY": aes_key, "KEFU_WECHAT_API_BASE": fake.base_url})
        stack.start(timeout=300)
        try:
            peer = WeChatPeer(f"{stack.settings.rasa_url}/webhooks/wechat/webhook",
                              token, appid, aes_key)
            results = load(peer, fake, crm, args.concurrency, args.rounds)
        finally:
            stack.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
