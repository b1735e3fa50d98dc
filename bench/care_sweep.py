"""The daily care sweep at scale (a benchmark, not a test).

    python -m bench.care_sweep --customers 100000 [--deliver 2000] [--url URL]

Builds a CRM with N customers and ~10 orders each (bench.crm_scale's
long-tail generator), then gives them what the care campaigns look at:
birthdays spread over the year, marketing consent for 30 %, a WeChat
identity, an SMS channel preference, and 2 % who entered the at-risk stage
yesterday. Measured:

* ``sweep_s``: selecting and queueing the day's birthday + repurchase +
  win-back campaigns (bot.scheduler.runner.run_campaign, as the scheduler
  runs them: audience query, consent, weekly cap, A/B, bulk insert);
* ``deliver_msg_per_s``: delivering ``--deliver`` of the queued messages by
  SMS to a local fake gateway (claim, route, render, HTTP, record).

Prints JSON. The default is SQLite in a temporary folder; ``--url`` takes a
PostgreSQL URL of an empty database instead.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from bench.crm_scale import Clock, generate
from bot.scheduler import campaigns as campaigns_mod
from bot.scheduler.runner import Deliverer, run_campaign
from bot.scheduler.senders import RasaPush, Senders, SmsGateway
from crm_adapter import CRM
from crm_adapter.models import CareChannelPreference, CareSend, ChannelIdentity, Consent, Customer, CustomerMetrics
from tests.fakes.sms_gateway import FakeSmsGateway

NOW = datetime(2026, 11, 1, 2, 0, 0)  # 10:00 China time


def prepare(crm: CRM, customers: int, seed: int) -> None:
    rng = random.Random(seed)
    batch = 50_000
    for start in range(1, customers + 1, batch):
        ids = range(start, min(start + batch, customers + 1))
        consents: list[dict[str, Any]] = []
        identities: list[dict[str, Any]] = []
        preferences: list[dict[str, Any]] = []
        metrics: list[dict[str, Any]] = []
        birthdays: list[dict[str, Any]] = []
        for cid in ids:
            birthdays.append({"b_id": cid, "b_day": date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 45)),
                              "b_phone": f"139{cid:08d}"})
            identities.append({"channel": "wechat", "external_id": f"o-bench-{cid}", "customer_id": cid,
                               "created_at": NOW - timedelta(days=400)})
            preferences.append({"customer_id": cid, "channel": "sms", "updated_at": NOW})
            if rng.random() < 0.3:
                consents.append({"customer_id": cid, "channel": "all", "purpose": "marketing", "granted": True,
                                 "source": "registration", "recorded_by": "customer",
                                 "created_at": NOW - timedelta(days=300)})
            if rng.random() < 0.02:
                metrics.append({"customer_id": cid, "order_count": 3, "lifetime_spend": 300.0, "frequency": 3,
                                "monetary": 300.0, "complaints_recent": 0, "csat_count": 0, "tier": "low",
                                "stage": "at_risk", "stage_since": NOW - timedelta(hours=20), "clv_simple": 0.0,
                                "clv_discounted": 0.0, "computed_at": NOW})

        with crm.engine.begin() as conn:
            conn.execute(update(Customer.__table__).where(Customer.id == bindparam("b_id"))
                         .values(birthday=bindparam("b_day"), phone=bindparam("b_phone")), birthdays)
            conn.execute(insert(ChannelIdentity.__table__), identities)
            conn.execute(insert(CareChannelPreference.__table__), preferences)
            if consents:
                conn.execute(insert(Consent.__table__), consents)
            if metrics:
                conn.execute(insert(CustomerMetrics.__table__), metrics)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--deliver", type=int, default=2000)
    parser.add_argument("--url", help="an empty database (default: SQLite in a temporary folder)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    clock = Clock(NOW)
    if args.url:
        url = args.url
    else:
        folder = Path(tempfile.mkdtemp(prefix="kefu-care-sweep-"))
        url = f"sqlite:///{folder / 'crm.sqlite3'}"
    crm = CRM(url, clock=clock)
    out: dict[str, Any] = {"customers": args.customers, "db": url.split("@")[-1]}
    t0 = time.perf_counter()
    generate(crm, args.customers, NOW, args.seed)
    prepare(crm, args.customers, args.seed)
    out["generate_s"] = round(time.perf_counter() - t0, 1)

    campaigns = campaigns_mod.load()
    day = date(2026, 11, 1)
    sweep: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name in ("birthday", "repurchase", "win_back"):
        t1 = time.perf_counter()
        result = run_campaign(crm, campaigns[name], day)
        sweep[name] = {"candidates": result.summary.candidates, "queued": result.queued,
                       "skipped": dict(result.summary.skipped), "seconds": round(time.perf_counter() - t1, 2)}
    out["sweep_s"] = round(time.perf_counter() - t0, 2)
    out["sweep"] = sweep

    gateway = FakeSmsGateway().start()
    try:
        senders = Senders(RasaPush("http://127.0.0.1:9", ""), sms=SmsGateway(gateway.url, gateway.token))
        deliverer = Deliverer(crm, campaigns, senders)
        t0 = time.perf_counter()
        outcome = deliverer.deliver_due(limit=args.deliver)
        elapsed = time.perf_counter() - t0
    finally:
        gateway.stop()
    delivered = outcome.get("delivered", 0)
    out["deliver"] = dict(outcome)
    out["deliver_msg_per_s"] = round(delivered / elapsed, 1) if elapsed else None
    with crm.engine.connect() as conn:
        out["care_rows"] = len(conn.execute(select(CareSend.id)).all())
    crm.dispose()
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
