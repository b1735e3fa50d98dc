"""Command line of the care scheduler.

    python -m bot.scheduler run                          # the process (make run starts it)
    python -m bot.scheduler list                         # campaigns, enabled/paused, next run, last run
    python -m bot.scheduler preview CAMPAIGN [--date D]  # audience and messages, dry run
    python -m bot.scheduler run-now CAMPAIGN [--date D]  # select, queue and deliver now
    python -m bot.scheduler pause CAMPAIGN | resume CAMPAIGN
    python -m bot.scheduler deliver                      # deliver what is due, once
    python -m bot.scheduler dead-letters                 # failed for good: for managers
    python -m bot.scheduler requeue ID                   # give a dead letter another round
    python -m bot.scheduler metrics [CAMPAIGN]           # per campaign and variant
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Optional, Sequence

from crm_adapter import CRM
from crm_adapter.errors import CRMError
from crm_adapter.masking import install_pii_filter
from crm_adapter.views import CHINA_TZ

from . import campaigns as campaigns_mod
from .campaigns import Campaign, CampaignError
from .process import ProcessSettings, install_signal_handlers, run
from .runner import Deliverer, china_today, preview, run_campaign
from .senders import Senders


def _day(text: Optional[str]) -> Optional[date]:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"error: --date must be YYYY-MM-DD, got {text!r}") from None


def _campaign(all_campaigns: dict[str, Campaign], name: str) -> Campaign:
    if name not in all_campaigns:
        raise SystemExit(f"error: no campaign {name!r}; known: {', '.join(all_campaigns)}")
    return all_campaigns[name]


def _next_run(campaign: Campaign, paused: bool, now: datetime) -> str:
    if not campaign.enabled:
        return "disabled"
    if paused:
        return "paused"
    local = now.astimezone(CHINA_TZ)
    at = local.replace(hour=campaign.run_at.hour, minute=campaign.run_at.minute, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at.strftime("%Y-%m-%d %H:%M")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.scheduler", description="Kefu proactive care scheduler.")
    parser.add_argument("--url", help="CRM database URL (default: KEFU_CRM_URL or var/crm.sqlite3)")
    parser.add_argument("--campaigns", type=Path, help="campaigns file (default: KEFU_CARE_CAMPAIGNS or "
                                                         "bot/scheduler/campaigns.yml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the scheduler process (leader or standby)")
    sub.add_parser("list", help="campaigns, enabled/paused, next and last run")
    for name in ("preview", "run-now"):
        p = sub.add_parser(name)
        p.add_argument("campaign")
        p.add_argument("--date", help="YYYY-MM-DD (China date; default today)")
        if name == "preview":
            p.add_argument("--limit", type=int, default=20)
    for name in ("pause", "resume"):
        sub.add_parser(name).add_argument("campaign")
    sub.add_parser("deliver", help="deliver what is due, once")
    sub.add_parser("dead-letters", help="messages that failed for good")
    sub.add_parser("requeue").add_argument("id")
    sub.add_parser("metrics").add_argument("campaign", nargs="?")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_pii_filter()
    import os

    try:
        all_campaigns = campaigns_mod.load(args.campaigns or (Path(os.environ["KEFU_CARE_CAMPAIGNS"])
                                                              if os.environ.get("KEFU_CARE_CAMPAIGNS") else None))
    except CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    crm = CRM(args.url) if args.url else CRM.from_env(directory=None)
    try:
        return _dispatch(args, crm, all_campaigns)
    except CRMError as exc:
        print(f"error: {getattr(exc, 'message_zh', None) or exc}", file=sys.stderr)
        return 1
    finally:
        crm.dispose()


def _dispatch(args: argparse.Namespace, crm: CRM, all_campaigns: dict[str, Campaign]) -> int:
    care = crm.care
    if args.command == "run":
        stop = threading.Event()
        install_signal_handlers(stop)
        return run(crm, all_campaigns, Senders.from_env(), ProcessSettings.from_env(), stop)
    crm.create_schema()
    if args.command == "list":
        states = care.states()
        now = crm._clock()
        print(f"{'campaign':<20} {'audience':<19} {'purpose':<9} {'state':<8} {'next run':<16}  last run")
        for c in all_campaigns.values():
            state = states.get(c.name)
            paused = bool(state and state.paused)
            last = (f"{state.last_run_day} ({state.last_selected} selected)"
                    if state and state.last_run_day else "-")
            status = "disabled" if not c.enabled else ("paused" if paused else "enabled")
            print(f"{c.name:<20} {c.audience:<19} {c.purpose:<9} {status:<8} {_next_run(c, paused, now):<16}  {last}")
        return 0
    if args.command == "preview":
        campaign = _campaign(all_campaigns, args.campaign)
        day = _day(args.date) or china_today(crm)
        result = preview(crm, campaign, day, limit=args.limit)
        s = result.summary
        print(f"{campaign.name} on {day}: {s.candidates} in the audience, {s.planned} would be queued; "
              f"skipped {dict(s.skipped) or 'none'} (dry run: nothing written)")
        for m in result.messages:
            print(f"  #{m['customer_id']} [{m['variant']}] via {m['channel']} ({m['occasion']}): {m['text']}")
        return 0
    if args.command == "run-now":
        campaign = _campaign(all_campaigns, args.campaign)
        result = run_campaign(crm, campaign, _day(args.date), force=True)
        outcome = Deliverer(crm, all_campaigns, Senders.from_env()).deliver_due()
        print(f"{campaign.name} on {result.day}: {result.queued} queued; delivery {dict(outcome) or 'nothing due'}")
        return 0
    if args.command in ("pause", "resume"):
        campaign = _campaign(all_campaigns, args.campaign)
        care.set_paused(campaign.name, args.command == "pause", "cli")
        print(f"{campaign.name} {'paused' if args.command == 'pause' else 'resumed'}")
        return 0
    if args.command == "deliver":
        outcome = Deliverer(crm, all_campaigns, Senders.from_env()).deliver_due()
        print(f"delivery: {dict(outcome) or 'nothing due'}")
        return 0
    if args.command == "dead-letters":
        rows = care.dead_letters()
        if not rows:
            print("no dead letters")
        for r in rows:
            print(f"{r.id:>8} {r.campaign:<20} customer {r.customer_id:<8} {r.channel or '-':<7} "
                  f"attempts {r.attempts}  {r.last_error or ''}")
        return 0
    if args.command == "requeue":
        if not care.requeue(args.id):
            print(f"error: {args.id} is not a dead or failed care message", file=sys.stderr)
            return 1
        print(f"care message {args.id} requeued")
        return 0
    if args.command == "metrics":
        rows = care.metrics(args.campaign)
        keys = ("selected", "sent", "delivered", "replied", "opted_out", "converted")
        print(f"{'campaign':<20} {'var':<4} " + " ".join(f"{k:>9}" for k in keys))
        for r in rows:
            print(f"{r['campaign']:<20} {r['variant']:<4} " + " ".join(f"{r[k]:>9}" for k in keys))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
