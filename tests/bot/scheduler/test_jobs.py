"""APScheduler's jobs in the SQL job store follow campaigns.yml (China time), and survive restarts."""
from __future__ import annotations

from dataclasses import replace
from datetime import time

from bot.scheduler.campaigns import Campaign
from bot.scheduler.process import ProcessSettings, build_scheduler, sync_jobs
from crm_adapter import CRM


def test_jobs_follow_the_campaigns_file_and_persist(crm: CRM, campaigns: dict[str, Campaign]) -> None:
    settings = ProcessSettings()
    scheduler = build_scheduler(crm, campaigns, settings)
    scheduler.start(paused=True)
    sync_jobs(scheduler, campaigns, settings)
    ids = {job.id for job in scheduler.get_jobs()}
    assert ids == {f"campaign:{n}" for n, c in campaigns.items() if c.enabled} | {"deliver"}
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
