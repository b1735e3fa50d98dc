"""APScheduler's jobs in the SQL job store follow campaigns.yml (China time), and survive restarts."""
from __future__ import annotations

import threading
import time as _time
from dataclasses import replace
from datetime import time

import pytest

from bot.scheduler.campaigns import Campaign
from bot.scheduler.process import ProcessSettings, build_scheduler, refresh_customer_model, run, sync_jobs
from bot.scheduler.senders import RasaPush, Senders
from crm_adapter import CRM
from crm_adapter.backends.http import RetryPolicy
from tests.crm_adapter.conftest import db_path, template_db  # noqa: F401 (fixtures)
from tests.crm_adapter.conftest import sqlite_url
from tests.crm_adapter.remote_fixtures import fake_zoho, zoho_directory  # noqa: F401 (fixtures)

NO_RETRY = RetryPolicy(connect_timeout=0.5, read_timeout=0.5, max_attempts=1, base_delay=0.01, total_budget=2)


def test_jobs_follow_the_campaigns_file_and_persist(crm: CRM, campaigns: dict[str, Campaign]) -> None:
    settings = ProcessSettings()
    scheduler = build_scheduler(crm, campaigns, settings)
    scheduler.start(paused=True)
    sync_jobs(scheduler, campaigns, settings)
    ids = {job.id for job in scheduler.get_jobs()}
    assert ids == {f"campaign:{n}" for n, c in campaigns.items() if c.enabled} | {"deliver", "analytics"}
    birthday = scheduler.get_job("campaign:birthday")
    assert (birthday.next_run_time.hour, birthday.next_run_time.minute) == (10, 0)
    assert str(birthday.next_run_time.tzinfo) == "Asia/Shanghai"
    scheduler.shutdown(wait=False)

    # A restarted scheduler finds the jobs in the database; an edited file moves or removes them.
    edited = dict(campaigns)
    edited["birthday"] = replace(campaigns["birthday"], run_at=time(8, 15))
    edited["festivals"] = replace(campaigns["festivals"], enabled=False)
    del edited["upgrade_nudge"]
    again = build_scheduler(crm, edited, settings)
    again.start(paused=True)
    assert "campaign:upgrade_nudge" in {job.id for job in again.get_jobs()}  # persisted from before
    sync_jobs(again, edited, settings)
    ids = {job.id for job in again.get_jobs()}
    assert "campaign:upgrade_nudge" not in ids and "campaign:festivals" not in ids
    moved = again.get_job("campaign:birthday")
    assert (moved.next_run_time.hour, moved.next_run_time.minute) == (8, 15)
    again.shutdown(wait=False)


def test_the_leader_sends_the_company_crm_what_it_missed_while_down(
        db_path, clock, fake_zoho, campaigns: dict[str, Campaign]) -> None:
    """A complaint filed while Zoho is down reaches it once Zoho is back, with nobody running a command."""
    linked = CRM(sqlite_url(db_path), clock=clock, directory=zoho_directory(fake_zoho, retry=NO_RETRY))
    port = fake_zoho.port
    fake_zoho.stop()
    view = linked.create_complaint(2, "logistics", "快递一直不动", "wechat", "wx-2", "w:2:complaint")
    waiting = linked.drain_outbox()
    assert (waiting.delivered, waiting.pending) == (0, 1)  # backing off after the failed first attempt
    fake_zoho.start(port)
    clock.advance(hours=1)  # past the back-off of the failed attempt

    stop = threading.Event()
    settings = replace(ProcessSettings(), outbox_every=0.2, renew=0.2)
    leader = threading.Thread(target=run, args=(linked, campaigns, Senders(RasaPush("http://127.0.0.1:9", "")),
                                                 settings, stop), daemon=True)
    leader.start()
    try:
        deadline = _time.monotonic() + 20
        while _time.monotonic() < deadline and not fake_zoho.records("Cases"):
            _time.sleep(0.1)
    finally:
        stop.set()
        leader.join(10)
    assert [r.get("Kefu_Ticket") for r in fake_zoho.records("Cases")] == [view.ticket_number]
    assert linked.drain_outbox().delivered == 0  # delivered once, nothing left
    linked.dispose()


def test_no_outbox_job_without_a_company_crm(crm: CRM, campaigns: dict[str, Campaign]) -> None:
    assert crm.drain_outbox() is None
    settings = ProcessSettings()
    scheduler = build_scheduler(crm, campaigns, settings)
    scheduler.start(paused=True)
    sync_jobs(scheduler, campaigns, settings, outbox=True)
    assert scheduler.get_job("outbox") is not None
    sync_jobs(scheduler, campaigns, settings, outbox=False)  # the directory was configured away
    assert scheduler.get_job("outbox") is None
    scheduler.shutdown(wait=False)


def test_the_customer_model_is_refreshed_daily_before_the_campaigns(crm: CRM, campaigns: dict[str, Campaign]) -> None:
    settings = ProcessSettings()
    scheduler = build_scheduler(crm, campaigns, settings)
    scheduler.start(paused=True)
    sync_jobs(scheduler, campaigns, settings)
    job = scheduler.get_job("analytics")
    assert (job.next_run_time.hour, job.next_run_time.minute) == (3, 30)
    assert str(job.next_run_time.tzinfo) == "Asia/Shanghai"
    assert all(c.run_at > time(3, 30) for c in campaigns.values() if c.enabled)
    # Switched off (a company running it from cron): the stored job goes.
    sync_jobs(scheduler, campaigns, replace(settings, analytics_at=None))
    assert scheduler.get_job("analytics") is None
    scheduler.shutdown(wait=False)


def test_the_refresh_time_comes_from_the_environment() -> None:
    assert ProcessSettings.from_env({"KEFU_ANALYTICS_REFRESH_AT": "02:05"}).analytics_at == time(2, 5)
    assert ProcessSettings.from_env({"KEFU_ANALYTICS_REFRESH_AT": "off"}).analytics_at is None
    assert ProcessSettings.from_env({}).analytics_at == time(3, 30)
    with pytest.raises(ValueError, match="HH:MM or off"):
        ProcessSettings.from_env({"KEFU_ANALYTICS_REFRESH_AT": "3h30"})


def test_the_refresh_job_stores_a_new_customer_model(crm: CRM) -> None:
    refresh_customer_model(crm)  # the first run of a database is a full one
    assert crm.refresh_analytics().kind == "incremental"  # so the job's run was stored
