"""What the scheduler's jobs do: run a campaign for a day, deliver what is due.

Both are plain functions over a `CRM`, the campaigns and the senders, so the
command line (`run-now`, `preview`), the APScheduler jobs and the tests call
exactly the same code.
"""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Mapping, Optional

from crm_adapter import CRM, policy
from crm_adapter.care import PlanSummary, Route, SendTask
from crm_adapter.errors import CRMError
from crm_adapter.masking import guard_logger

from .campaigns import Campaign, CampaignError
from .senders import Senders, SendError

log = guard_logger(__name__)

#: The Rasa output channel for each push channel (bot/channels: "wechat", "web").
OUTPUT_CHANNEL = {"wechat": "wechat", "web": "web"}


def china_today(crm: CRM) -> date:
    return policy.china_date(crm._now())


@dataclass
class RunResult:
    campaign: str
    day: date
    summary: PlanSummary
    queued: int = 0
    paused: bool = False


def run_campaign(crm: CRM, campaign: Campaign, day: Optional[date] = None, *, force: bool = False) -> RunResult:
    """Select and queue one campaign's messages for ``day`` (default: today, China).

    A paused campaign does nothing unless ``force`` (the CLI's run-now of a
    paused campaign still asks for it explicitly).
    """
    day = day or china_today(crm)
    state = crm.care.state(campaign.name)
    if state is not None and state.paused and not force:
        log.info("care campaign %s is paused; not run", campaign.name)
        return RunResult(campaign.name, day, PlanSummary(), paused=True)
    rules = campaign.rules()
    summary = PlanSummary()
    queued = 0
    for batch in crm.care.plan(rules, day, summary):
        queued += crm.care.enqueue(rules, batch)
    crm.care.record_run(campaign.name, day, summary, queued)
    log.info("care campaign %s for %s: %d candidates, %d queued, skipped %s", campaign.name, day,
             summary.candidates, queued, dict(summary.skipped))
    return RunResult(campaign.name, day, summary, queued)


@dataclass
class Preview:
    campaign: str
    day: date
    summary: PlanSummary
    messages: list[dict[str, Any]] = field(default_factory=list)


def preview(crm: CRM, campaign: Campaign, day: date, limit: int = 20) -> Preview:
    """The audience and rendered messages for ``day``; reads only, writes nothing."""
    rules = campaign.rules()
    summary = PlanSummary()
    result = Preview(campaign.name, day, summary)
    for batch in crm.care.plan(rules, day, summary):
        for planned in batch:
            if len(result.messages) < limit:
                coupon = None
                if campaign.wants_coupon(planned.context) and campaign.coupon is not None:
                    coupon = {"code": "（发送时生成）", "title": campaign.coupon.title,
                              "amount": f"{campaign.coupon.amount:g}", "min_spend": f"{campaign.coupon.min_spend:g}",
                              "expire_date": f"{campaign.coupon.valid_days}天内"}
                result.messages.append({
                    "customer_id": planned.customer_id, "occasion": planned.occasion, "variant": planned.variant,
                    "channel": planned.channel or "next_chat",
                    "text": campaign.render(planned.variant, planned.context, coupon),
                })
    return result


class Deliverer:
    """Sends what is due: claim, route, render, send, record (see crm_adapter.care)."""

    def __init__(self, crm: CRM, campaigns: Mapping[str, Campaign], senders: Senders,
                 workers: Optional[int] = None) -> None:
        self.crm = crm
        self.campaigns = campaigns
        self.senders = senders
        # Sending waits on the network (Rasa, SMTP, the gateway) and on commits: a few
        # messages in flight at once. Each row is claimed by one worker only.
        self.workers = workers or int(os.environ.get("KEFU_CARE_SEND_WORKERS") or 4)

    def deliver_due(self, limit: int = 200) -> Counter:
        """Deliver up to ``limit`` due messages; counts per outcome."""
        outcome: Counter = Counter()
        self.crm.care.expire_deferred()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="care-send") as pool:
            while True:
                tasks = self.crm.care.claim(min(limit - sum(outcome.values()), 50))
                if not tasks:
                    break
                outcome.update(pool.map(self.deliver, tasks))
                if sum(outcome.values()) >= limit:
                    break
        return outcome

    def deliver(self, task: SendTask) -> str:
        care = self.crm.care
        campaign = self.campaigns.get(task.campaign)
        if campaign is None:
            care.skip(task, "campaign_removed")
            return "skipped"
        try:
            route = care.route(task)
            if route.action == "skip":
                care.skip(task, route.reason or "skipped")
                return "skipped"
            if route.action == "later":
                assert route.retry_at is not None
                care.later(task, route.retry_at, route.reason or "quiet_hours")
                return "later"
            if task.text:
                return self._send(task, campaign, route, task.text, None, stored=True)
            text, coupon = self._render(task, campaign)
            return self._send(task, campaign, route, text, coupon, stored=False)
        except SendError as exc:
            return care.fail(task, exc, permanent=exc.permanent)
        except (CampaignError, CRMError) as exc:
            return care.fail(task, exc)

    def _render(self, task: SendTask, campaign: Campaign) -> tuple[str, Optional[str]]:
        coupon = None
        if campaign.wants_coupon(task.context) and campaign.coupon is not None:
            coupon = self.crm.care.issue_coupon(task, campaign.coupon)
        values = None if coupon is None else {
            "code": coupon.code, "title": coupon.title, "amount": f"{coupon.amount:g}",
            "min_spend": f"{coupon.min_spend:g}",
            "expire_date": f"{coupon.expires_at.month}月{coupon.expires_at.day}日",
        }
        try:
            text = campaign.render(task.variant, task.context, values)
        except Exception as exc:  # a template error must not take the worker down
            raise CampaignError(f"render failed: {type(exc).__name__}") from exc
        return text, (coupon.code if coupon else None)

    def _send(self, task: SendTask, campaign: Campaign, route: Route, text: str, coupon: Optional[str],
              *, stored: bool) -> str:
        """Send, recording the rendered text with the outcome (or before a chat push,
        whose action reads it from the CRM)."""
        care = self.crm.care
        keep = {} if stored else {"text": text, "coupon_code": coupon}
        channel, address = route.channel, route.address
        if route.action == "defer" or channel is None or address is None:
            care.defer(task, route.reason or "no_push_channel", channel, **keep)
            return "deferred"
        if channel in OUTPUT_CHANNEL:
            window = care.settings.wechat_window if channel == "wechat" else care.settings.web_live
            last = self.senders.rasa.last_customer_message_at(address)
            now = _aware(self.crm._now())
            if last is None or now - last > window:
                care.defer(task, "outside_48h" if channel == "wechat" else "not_online", channel, **keep)
                return "deferred"
            if not stored:
                care.set_text(task, text, coupon)
            self.senders.rasa.trigger(address, OUTPUT_CHANNEL[channel], task.id)
            care.sent(task, channel, address)
            return "sent"
        if channel == "email":
            if self.senders.mail is None:
                care.defer(task, "email_not_configured", channel, **keep)
                return "deferred"
            self.senders.mail.send(address, campaign.title, text, task.id)
            care.sent(task, channel, delivered=True, **keep)
            return "delivered"
        if channel == "sms":
            if self.senders.sms is None:
                care.defer(task, "sms_not_configured", channel, **keep)
                return "deferred"
            self.senders.sms.send(address, text, task.id)
            care.sent(task, channel, delivered=True, **keep)
            return "delivered"
        care.defer(task, "no_push_channel", channel, **keep)
        return "deferred"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
