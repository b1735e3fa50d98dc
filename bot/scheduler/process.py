"""The scheduler process: one leader (a lease in the CRM database), APScheduler inside.

    python -m bot.scheduler run

Start as many as you like (two machines, a restart overlapping the old
process): each tries to take the ``care-scheduler`` lease; the one that gets
it starts APScheduler, the others wait as standbys and try again every
``renew`` seconds. The leader renews the lease every ``renew`` seconds; if a
renewal fails (it stalled past the TTL and someone else took over) it stops
its scheduler at once. A leader killed outright is replaced once its lease
lapses (``ttl``).

Jobs live in APScheduler's SQLAlchemyJobStore (table ``care_jobs`` in the
CRM database), so a campaign's next run survives restarts; a run missed
while no scheduler was up is run once at start (coalesced) if it is less
than ``misfire`` old. At every start the jobs are re-synchronised with
campaigns.yml: added, moved to a new time, or removed. A daily
job refreshes the customer model (``KEFU_ANALYTICS_REFRESH_AT``, 03:30 China
time by default) before the campaigns read it. Job functions are
module-level (`run_campaign_job`, `deliver_job`, `outbox_job`, `analytics_job`) so the store can pickle a
reference to them; they find the CRM and campaigns in `_CONTEXT`.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any, Mapping, Optional

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from crm_adapter import CRM, config
from crm_adapter.lease import Lease
from crm_adapter.masking import guard_logger

from .campaigns import Campaign
from .runner import Deliverer, run_campaign
from .senders import Senders

log = guard_logger(__name__)

LEASE_NAME = "care-scheduler"
JOB_TABLE = "care_jobs"
CHINA = "Asia/Shanghai"
DELIVER_JOB = "deliver"
OUTBOX_JOB = "outbox"
ANALYTICS_JOB = "analytics"
#: Remote-CRM writes one outbox job delivers at most (strictly in order, so it stops at the first stuck one).
OUTBOX_BATCH = 500
#: Messages one delivery job sends at most before giving the (single) worker back to other jobs.
DELIVER_BATCH = 5000


@dataclass(frozen=True)
class ProcessSettings:
    ttl: timedelta = timedelta(seconds=15)
    renew: float = 5.0
    deliver_every: float = 30.0
    outbox_every: float = 60.0
    misfire: timedelta = timedelta(hours=6)
    #: China time of the daily customer-model refresh (None: off, e.g. when cron runs it).
    analytics_at: Optional[time] = time(3, 30)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "ProcessSettings":
        env = os.environ if env is None else env
        return cls(
            ttl=timedelta(seconds=float(env.get("KEFU_CARE_LEADER_TTL") or 15)),
            renew=float(env.get("KEFU_CARE_LEADER_RENEW") or 5),
            deliver_every=float(env.get("KEFU_CARE_DELIVER_SECONDS") or 30),
            outbox_every=float(env.get("KEFU_OUTBOX_DRAIN_SECONDS") or 60),
            analytics_at=_clock_time(env.get("KEFU_ANALYTICS_REFRESH_AT") or "03:30"),
        )


def _clock_time(text: str) -> Optional[time]:
    """``HH:MM`` as a time; ``off`` as None.  A typo fails the start rather than
    silently never refreshing."""
    if text.strip().lower() == "off":
        return None
    try:
        hour, minute = (int(part) for part in text.strip().split(":"))
        return time(hour, minute)
    except ValueError as exc:
        raise ValueError(f"KEFU_ANALYTICS_REFRESH_AT must be HH:MM or off, not {text!r}") from exc


@dataclass
class _Context:
    crm: CRM
    campaigns: Mapping[str, Campaign]
    deliverer: Deliverer


_CONTEXT: Optional[_Context] = None


def run_campaign_job(name: str) -> None:
    """APScheduler job: today's run of one campaign, then deliver at once."""
    context = _CONTEXT
    if context is None or name not in context.campaigns:
        log.warning("care job for unknown campaign %s skipped", name)
        return
    run_campaign(context.crm, context.campaigns[name])
    context.deliverer.deliver_due(limit=DELIVER_BATCH)


def deliver_job() -> None:
    """APScheduler job: deliver what is due (retries, quiet hours over, new rows)."""
    if _CONTEXT is not None:
        _CONTEXT.deliverer.deliver_due(limit=DELIVER_BATCH)


def outbox_job() -> None:
    """APScheduler job: send the company CRM (Zoho, REST) the writes it missed while down."""
    if _CONTEXT is None:
        return
    report = _CONTEXT.crm.drain_outbox(limit=OUTBOX_BATCH)
    if report is not None and (report.delivered or report.dead or report.stopped == "unavailable"):
        log.info("outbox drain: %s delivered, %s dead, %s still pending (%s)",
                 report.delivered, report.dead, report.pending, report.stopped)


def refresh_customer_model(crm: CRM) -> None:
    """Recompute the stored customer model incrementally (RFM, tiers, lifecycle, churn
    risk, product popularity and co-purchases), before the morning's campaigns read it.

    Without it segments, greetings by tier and recommendations go stale; at a
    million customers an unrefreshed database recommends without popularity.
    """
    result = crm.refresh_analytics()
    log.info("customer model refreshed (%s): %s customers in %.1f s",
             result.kind, result.customers_refreshed, result.seconds)


def analytics_job() -> None:
    """APScheduler job: the daily customer-model refresh."""
    if _CONTEXT is not None:
        refresh_customer_model(_CONTEXT.crm)


def job_store_engine(url: str) -> Engine:
    """APScheduler 3.9 needs a 1.x-style engine; same database as the CRM."""
    if make_url(url).get_backend_name() == "sqlite":
        return create_engine(url, connect_args={"timeout": config.SQLITE_BUSY_TIMEOUT_S})
    return create_engine(url, pool_pre_ping=True)


def build_scheduler(crm: CRM, campaigns: Mapping[str, Campaign], settings: ProcessSettings) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=job_store_engine(crm.url), tablename=JOB_TABLE)},
        # One worker: campaigns run one after another, so the weekly cap sees
        # what the previous campaign of the day queued.
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": int(settings.misfire.total_seconds())},
        timezone=CHINA,
    )
    return scheduler


def sync_jobs(scheduler: BackgroundScheduler, campaigns: Mapping[str, Campaign], settings: ProcessSettings,
              outbox: bool = False) -> None:
    """Make the stored jobs match campaigns.yml (enabled campaigns, their times).

    ``outbox``: the CRM mirrors writes to a company CRM, whose outbox the
    leader drains (the same one-leader guarantee keeps drains from racing,
    though the outbox's own claim would make that safe anyway).
    """
    wanted = {f"campaign:{c.name}": c for c in campaigns.values() if c.enabled}
    housekeeping = ({DELIVER_JOB} | ({OUTBOX_JOB} if outbox else set())
                    | ({ANALYTICS_JOB} if settings.analytics_at else set()))
    for job in scheduler.get_jobs():
        if job.id not in housekeeping and job.id not in wanted:
            scheduler.remove_job(job.id)
            log.info("care job %s removed (no longer in campaigns.yml)", job.id)
    for job_id, campaign in wanted.items():
        scheduler.add_job(run_campaign_job, CronTrigger(hour=campaign.run_at.hour, minute=campaign.run_at.minute,
                                                        timezone=CHINA),
                          id=job_id, name=campaign.title, args=[campaign.name], replace_existing=True)
    scheduler.add_job(deliver_job, IntervalTrigger(seconds=settings.deliver_every), id=DELIVER_JOB,
                      name="deliver due care messages", replace_existing=True)
    if settings.analytics_at is not None:
        scheduler.add_job(analytics_job, CronTrigger(hour=settings.analytics_at.hour,
                                                     minute=settings.analytics_at.minute, timezone=CHINA),
                          id=ANALYTICS_JOB, name="refresh the customer model", replace_existing=True)
    if outbox:
        scheduler.add_job(outbox_job, IntervalTrigger(seconds=settings.outbox_every), id=OUTBOX_JOB,
                          name="send missed writes to the company CRM", replace_existing=True)


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run(crm: CRM, campaigns: Mapping[str, Campaign], senders: Senders,
        settings: Optional[ProcessSettings] = None, stop: Optional[threading.Event] = None) -> int:
    """Lead or stand by until ``stop`` (or SIGTERM/SIGINT when run from the command line)."""
    global _CONTEXT
    settings = settings or ProcessSettings.from_env()
    stop = stop or threading.Event()
    crm.create_schema()
    _CONTEXT = _Context(crm, campaigns, Deliverer(crm, campaigns, senders))
    lease = Lease(crm.engine, LEASE_NAME, holder_id(), settings.ttl)
    standby_logged = False
    while not stop.is_set():
        if not lease.acquire():
            if not standby_logged:
                log.info("care scheduler standing by (lease held by another scheduler)")
                standby_logged = True
            stop.wait(settings.renew)
            continue
        standby_logged = False
        log.info("care scheduler leading as %s", lease.holder)
        scheduler = build_scheduler(crm, campaigns, settings)
        scheduler.start(paused=True)
        sync_jobs(scheduler, campaigns, settings, outbox=crm.directory is not None)
        scheduler.resume()
        print(f"care scheduler: leader {lease.holder}", flush=True)
        try:
            while not stop.wait(settings.renew):
                try:
                    if not lease.renew():
                        log.warning("care scheduler lost its lease; stopping its jobs")
                        break
                except Exception as exc:  # database down: stop leading rather than risk two leaders
                    log.warning("care scheduler could not renew its lease: %s", type(exc).__name__)
                    break
        finally:
            scheduler.shutdown(wait=False)
        if stop.is_set():
            lease.release()
    return 0


def install_signal_handlers(stop: threading.Event) -> None:
    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
