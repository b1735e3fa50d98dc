"""Win-back offers for customers who are drifting away (流失风险 / 已流失).

Why here and not in the bot: whether a customer gets an offer depends on
their lifecycle stage (crm_adapter.analytics), their marketing consent on the
channel they are using (crm_adapter.consent) and how recently they were last
given one — all customer-domain rules.  The bot only says what was given.

The offer is configured by the company (no offer when unset):

    KEFU_RETENTION_COUPON_AMOUNT   e.g. 30      (yuan off; unset = no offer)
    KEFU_RETENTION_COUPON_MIN_SPEND e.g. 199    (default 0)
    KEFU_RETENTION_COUPON_TITLE    default 回归礼券
    KEFU_RETENTION_COUPON_DAYS     valid for, default 14
    KEFU_RETENTION_EVERY_DAYS      at most one per customer per this many days, default 90
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from .errors import InvalidInput

#: Lifecycle stages (crm_adapter.analytics) that qualify for a win-back offer.
DRIFTING_STAGES = frozenset({"at_risk", "churned"})

#: The conversation channel (as Rasa names it) → the consent channel it counts as.
CONSENT_CHANNEL_OF = {"wechat": "wechat", "socketio": "web", "rest": "web", "web": "web", "app": "app"}


@dataclass(frozen=True)
class RetentionOffer:
    title: str
    amount: float
    min_spend: float
    valid_days: int
    every_days: int


def offer_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[RetentionOffer]:
    """The configured offer, or None when the company has not configured one."""
    env = os.environ if env is None else env
    raw_amount = (env.get("KEFU_RETENTION_COUPON_AMOUNT") or "").strip()
    if not raw_amount:
        return None
    try:
        offer = RetentionOffer(
            title=(env.get("KEFU_RETENTION_COUPON_TITLE") or "回归礼券").strip()[:64],
            amount=float(raw_amount),
            min_spend=float(env.get("KEFU_RETENTION_COUPON_MIN_SPEND") or 0),
            valid_days=int(env.get("KEFU_RETENTION_COUPON_DAYS") or 14),
            every_days=int(env.get("KEFU_RETENTION_EVERY_DAYS") or 90),
        )
    except ValueError:
        raise InvalidInput("挽留优惠券配置不正确（KEFU_RETENTION_COUPON_*）。") from None
    if not (offer.amount > 0 and offer.min_spend >= 0 and offer.valid_days > 0 and offer.every_days > 0):
        raise InvalidInput("挽留优惠券配置不正确（KEFU_RETENTION_COUPON_*）。")
    return offer
