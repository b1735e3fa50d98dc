"""The complaint log at scale (a benchmark, not a test):

    python -m bench.complaint_log --complaints 1000000 [--url postgresql+psycopg2://...] [--db PATH]

Builds a fresh CRM (SQLite file by default) with N complaints over two years
from 50,000 customers (bulk executemany inserts; descriptions drawn from a
pool of Chinese complaint texts, tokenised once each, so the search index is
filled at insert speed), starts the real desk app on 127.0.0.1 and measures,
over HTTP with a signed-in manager, p50/p95 of: the first page, page 20
(keyset), each filter, a search for a common and a rare word, sorting by SLA,
and the KPI dashboard (/desk/api/kpis, which also tokenises two weeks of
descriptions for the topic view). Prints JSON. An existing --db file with
the same N is reused (generation skipped).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import requests
from aiohttp import web
from sqlalchemy import func, insert, select, text

from crm_adapter import CRM
from crm_adapter.complaint_search import tokens
from crm_adapter.models import COMPLAINT_CATEGORIES, Complaint, ComplaintSearch, Customer

PASSWORD = "bench-password-123"
TEMPLATES = [
    "快递{n}天了还没到，物流信息一直不更新", "收到的{p}是坏的，包装也破了", "客服态度很差，问了{n}次都没人回",
    "{p}的价格比别家贵了{n}十块", "退货申请提交{n}天了没人处理", "退款一直没到账，已经等了{n}天",
    "{p}用了{n}天就坏了，质量太差", "发票开错了，抬头不对", "配送员没打电话就把{p}放门口了",
    "优惠券用不了，结算时提示失效", "积分兑换失败，积分却扣了", "{p}颜色和图片不一样",
    "快递员态度恶劣，还骂人", "买了{n}件只到了一件", "售后电话一直打不通", "{p}有异味，孩子用了过敏",
]
PRODUCTS = ["保温杯", "耳机", "电饭煲", "羽绒服", "洗发水", "手机壳", "台灯", "奶粉", "运动鞋", "床单"]
CHANNELS = ["socketio", "wechat", "rest"]


def _pool(rng: random.Random, size: int = 400) -> list[tuple[str, str]]:
    texts = {t.format(n=rng.randint(2, 9), p=rng.choice(PRODUCTS)) for t in TEMPLATES for _ in range(40)}
    texts_list = sorted(texts)[:size]
    return [(t, " ".join(tokens(t))) for t in texts_list]


def generate(crm: CRM, n: int, now: datetime, seed: int = 7) -> float:
    rng = random.Random(seed)
    started = time.perf_counter()
    crm.create_schema()
    customers = 50_000
    with crm.engine.begin() as conn:
        conn.execute(insert(Customer.__table__), [
            {"id": cid, "name": f"客户{cid}", "phone": None, "member_level": "普通会员", "points": 0,
             "points_expiring": 0, "tier": rng.choices(("core", "potential", "low"), (10, 30, 60))[0],
             "lifecycle_stage": "growth", "total_spent": 0.0, "created_at": now - timedelta(days=900),
             "timezone": "Asia/Shanghai", "deleted": False} for cid in range(1, customers + 1)])
    pool = _pool(rng)
    staff = [f"agent{i}" for i in range(20)]
    batch = 50_000
    for start in range(0, n, batch):
        rows, search = [], []
        for cid in range(start + 1, min(start + batch, n) + 1):
            created = now - timedelta(days=730 * (1 - cid / n), minutes=rng.uniform(0, 30))
            severity = rng.choices(("high", "medium", "low"), (10, 50, 40))[0]
            due = created + timedelta(hours={"high": 4, "medium": 24, "low": 48}[severity])
            done = created < now - timedelta(days=3) and rng.random() < 0.95
            resolved = created + timedelta(hours=rng.lognormvariate(2.5, 1)) if done else None
            text_, toks = rng.choice(pool)
            rows.append({
                "id": cid, "ticket_number": f"TS{cid:012d}", "customer_id": rng.randint(1, customers) if rng.random() < 0.8 else None,
                "category": rng.choice(COMPLAINT_CATEGORIES), "description": text_, "severity": severity,
                "status": ("closed" if rng.random() < 0.5 else "resolved") if done else rng.choice(("open", "pending")),
                "channel": rng.choice(CHANNELS), "sender_id": f"s{cid}", "sla_due_at": due, "created_at": created,
                "resolved_at": resolved, "assigned_to": rng.choice(staff) if rng.random() < 0.7 else None,
                "first_response_at": created + timedelta(minutes=rng.uniform(1, 600)),
                "outcome": ("resolved" if done else None), "reopened_count": 1 if rng.random() < 0.03 else 0,
                "updated_at": created})
            search.append({"complaint_id": cid, "tokens": toks, "updated_at": now})
        with crm.engine.begin() as conn:
            conn.execute(insert(Complaint.__table__), rows)
            conn.execute(insert(ComplaintSearch.__table__), search)
    # a rare word, in a handful of complaints
    with crm.engine.begin() as conn:
        for cid in rng.sample(range(1, n + 1), 5):
            conn.execute(text("UPDATE complaint_search SET tokens = tokens || ' 榴莲' WHERE complaint_id = :c"),
                         {"c": cid})
        if crm.engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def serve(crm_url: str) -> tuple[str, Any]:
    from bot.desk.config import DeskConfig
    from bot.desk.server import make_app

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = DeskConfig(crm_url=crm_url, rasa_url="http://127.0.0.1:9", rasa_jwt_secret="", events_url=None)

    async def start() -> web.AppRunner:
        runner = web.AppRunner(make_app(cfg), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    return f"http://127.0.0.1:{port}", (loop, runner)


def timed(http: requests.Session, url: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        r = http.get(url, timeout=120)
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(samples[max(int(len(samples) * 0.95) - 1, 0)], 1), "runs": runs}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=1_000_000)
    parser.add_argument("--url", help="CRM URL (default: a SQLite file, --db)")
    parser.add_argument("--db", type=Path, default=Path("var/bench/complaints.sqlite3"))
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    url = args.url or f"sqlite:///{args.db}"
    crm = CRM(url)
    generated: Optional[float] = None
    existing = 0
    try:
        with crm.engine.connect() as conn:
            existing = conn.execute(select(func.count()).select_from(Complaint)).scalar_one()
    except Exception:  # noqa: BLE001 - no schema yet
        existing = 0
    if existing != args.complaints:
        if args.url is None:
            args.db.parent.mkdir(parents=True, exist_ok=True)
            args.db.unlink(missing_ok=True)
            crm.dispose()
            crm = CRM(url)
        generated = generate(crm, args.complaints, now)
    desk = crm.desk
    username = f"bench{int(time.time())}"
    desk.create_staff(username, "压测主管", "manager", PASSWORD)
    base, (loop, runner) = serve(url)
    http = requests.Session()
    assert http.post(f"{base}/desk/login", data={"username": username, "password": PASSWORD},
                     allow_redirects=False).status_code == 302
    first = http.get(f"{base}/desk/complaints").text
    import re

    cursor = None
    page_url = f"{base}/desk/complaints"
    for _ in range(19):  # walk to page 20 by the next links
        match = re.search(r'id="page-next" href="([^"]+)"|href="([^"]+)" id="page-next"', http.get(page_url).text)
        if not match:
            break
        page_url = base + (match.group(1) or match.group(2)).replace("&amp;", "&")
        cursor = page_url
    scenarios = {
        "list_first_page": "/desk/complaints",
        "list_page_20_keyset": (cursor or page_url).replace(base, ""),
        "filter_status_open": "/desk/complaints?status=open",
        "filter_category_severity": "/desk/complaints?category=quality&severity=high",
        "filter_channel_agent": "/desk/complaints?channel=wechat&agent=agent3",
        "filter_tier_core": "/desk/complaints?tier=core",
        "filter_date_range_week": f"/desk/complaints?from={(now - timedelta(days=60)).date()}&to={(now - timedelta(days=53)).date()}",
        "filter_sla_breached": "/desk/complaints?sla=breached",
        "sort_sla": "/desk/complaints?sort=sla",
        "search_common_word": "/desk/complaints?q=快递",
        "search_rare_word": "/desk/complaints?q=榴莲",
        "search_two_words_plus_filter": "/desk/complaints?q=退款+没到账&category=after_sales",
    }
    results: dict[str, Any] = {"backend": crm.engine.dialect.name, "complaints": args.complaints,
                               "generate_s": None if generated is None else round(generated, 1)}
    for name, path in scenarios.items():
        results[name] = timed(http, base + path, args.runs)
    results["kpi_api_dashboard"] = timed(http, f"{base}/desk/api/kpis", max(args.runs // 4, 5))
    results["kpi_page_html"] = timed(http, f"{base}/desk/kpis", args.runs)
    assert first
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    crm.dispose()
    print(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
