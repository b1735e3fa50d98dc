"""Campaign definitions: bot/scheduler/campaigns.yml, checked when loaded.

A mistake in the file (an unknown audience, a template that names a variable
the audience does not provide, a bad time) stops the scheduler at start with
the campaign's name, rather than failing one customer at a time at 10:00.
Templates are Jinja2 with StrictUndefined (a missing variable is an error,
never an empty string) and autoescape off: the output is plain text for
chat, SMS and e-mail, and templates only ever insert CRM values, never
customer-entered HTML.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Mapping, Optional

import jinja2
import yaml

from crm_adapter import consent
from crm_adapter.care import CampaignRules
from crm_adapter.care_audience import AUDIENCE_KINDS
from crm_adapter.errors import InvalidInput
from crm_adapter.retention import RetentionOffer

DEFAULT_FILE = Path(__file__).with_name("campaigns.yml")
MAX_TEXT = 600

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)

#: What each audience adds to the customer's own variables (for checking templates).
SAMPLE_FACTS: dict[str, dict[str, Any]] = {
    "birthday": {},
    "holiday": {"holiday": "春节"},
    "repurchase": {"category": "宠物用品", "interval_days": 30},
    "win_back": {},
    "complaint_followup": {"ticket_number": "TS202605200001", "category": "quality"},
    "points_expiry": {"points_expiring": 500, "expire_date": "6月30日"},
    "coupon_expiry": {"coupon_title": "满减券", "coupon_amount": "20", "expire_date": "6月2日"},
    "upgrade_nudge": {"next_level": "银卡", "missing": "200"},
}
SAMPLE_CUSTOMER = {"name": "张伟", "member_level": "金卡", "points": 1200, "tier": "core"}
SAMPLE_COUPON = {"code": "CC202605310001", "title": "礼券", "amount": "20", "min_spend": "99",
                 "expire_date": "6月30日"}


class CampaignError(ValueError):
    """The campaigns file is wrong; the message names the campaign and the problem."""


@dataclass(frozen=True)
class Campaign:
    name: str
    title: str
    enabled: bool
    run_at: time
    audience: str
    purpose: str
    variants: Mapping[str, str]
    params: Mapping[str, Any] = field(default_factory=dict)
    valid_days: int = 7
    coupon: Optional[RetentionOffer] = None
    coupon_tiers: tuple[str, ...] = ()

    def rules(self) -> CampaignRules:
        return CampaignRules(self.name, self.audience, self.purpose, dict(self.params),
                             tuple(sorted(self.variants)), self.valid_days, self.coupon, self.coupon_tiers)

    def wants_coupon(self, context: Mapping[str, Any]) -> bool:
        return self.coupon is not None and (not self.coupon_tiers or context.get("tier") in self.coupon_tiers)

    def render(self, variant: str, context: Mapping[str, Any], coupon: Optional[Mapping[str, Any]] = None) -> str:
        template = _ENV.from_string(self.variants.get(variant) or self.variants["A"])
        text = template.render(**{**context, "coupon": coupon}).strip()
        if not text:
            raise CampaignError(f"campaign {self.name}: variant {variant} rendered an empty message")
        return text[:MAX_TEXT]


def _time(value: Any, where: str) -> time:
    try:
        return consent.wall_time(str(value))
    except InvalidInput:
        raise CampaignError(f"{where}: run_at must be HH:MM (China time), got {value!r}") from None


def _coupon(raw: Any, where: str) -> tuple[Optional[RetentionOffer], tuple[str, ...]]:
    if raw in (None, False):
        return None, ()
    if not isinstance(raw, dict):
        raise CampaignError(f"{where}: coupon must be a mapping")
    try:
        offer = RetentionOffer(
            title=str(raw["title"])[:64], amount=float(raw["amount"]), min_spend=float(raw.get("min_spend", 0)),
            valid_days=int(raw.get("valid_days", 14)), every_days=int(raw.get("every_days", 90)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CampaignError(f"{where}: coupon needs title and amount ({exc})") from None
    if offer.amount <= 0 or offer.min_spend < 0 or offer.valid_days <= 0 or offer.every_days <= 0:
        raise CampaignError(f"{where}: coupon amounts and days must be positive")
    return offer, tuple(str(t) for t in raw.get("tiers", ()))


def parse(data: Any) -> dict[str, Campaign]:
    """Campaigns from the YAML's data, checked (see the module docstring)."""
    if not isinstance(data, dict) or not isinstance(data.get("campaigns"), list):
        raise CampaignError("campaigns file: expected a top-level 'campaigns:' list")
    out: dict[str, Campaign] = {}
    for n, raw in enumerate(data["campaigns"], 1):
        if not isinstance(raw, dict):
            raise CampaignError(f"campaign #{n}: expected a mapping")
        name = str(raw.get("name") or "").strip()
        where = f"campaign {name or '#' + str(n)}"
        if not name or len(name) > 48 or not name.replace("_", "").replace("-", "").isalnum():
            raise CampaignError(f"{where}: name must be 1-48 letters, digits, '_' or '-'")
        if name in out:
            raise CampaignError(f"{where}: defined twice")
        audience = str(raw.get("audience") or "")
        if audience not in AUDIENCE_KINDS:
            raise CampaignError(f"{where}: audience must be one of {', '.join(AUDIENCE_KINDS)}")
        purpose = str(raw.get("purpose") or "")
        if purpose not in ("marketing", "service"):
            raise CampaignError(f"{where}: purpose must be marketing or service")
        variants = raw.get("variants")
        if not isinstance(variants, dict) or "A" not in variants or set(variants) - {"A", "B"}:
            raise CampaignError(f"{where}: variants must be A (and optionally B)")
        coupon, tiers = _coupon(raw.get("coupon"), where)
        campaign = Campaign(
            name=name, title=str(raw.get("title") or name)[:64], enabled=bool(raw.get("enabled", True)),
            run_at=_time(raw.get("run_at", "10:00"), where), audience=audience, purpose=purpose,
            variants={k: str(v) for k, v in variants.items()}, params=dict(raw.get("params") or {}),
            valid_days=int(raw.get("valid_days", 7)), coupon=coupon, coupon_tiers=tiers,
        )
        if not 1 <= campaign.valid_days <= 60:
            raise CampaignError(f"{where}: valid_days must be 1-60")
        sample = {**SAMPLE_CUSTOMER, **SAMPLE_FACTS[audience]}
        for variant in campaign.variants:
            for coupon_value in (None, SAMPLE_COUPON):
                try:
                    campaign.render(variant, sample, coupon_value)
                except jinja2.TemplateError as exc:
                    raise CampaignError(f"{where}: variant {variant}: {exc}") from None
        out[name] = campaign
    return out


def load(path: Optional[Path] = None) -> dict[str, Campaign]:
    file = Path(path or DEFAULT_FILE)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CampaignError(f"campaigns file {file}: {exc}") from None
    return parse(data)
