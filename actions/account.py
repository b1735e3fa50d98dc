"""Membership, profile changes, marketing consent and satisfaction scores."""
from __future__ import annotations

import re
from datetime import date
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.forms import VerifiedFlowAction, VerifiedFormValidation, checked_slot, said_in_passing
from crm_adapter import errors, validation

FIELD_LABELS = {"phone": "手机号", "birthday": "生日", "email": "邮箱",
                "address": "默认收货地址", "name": "姓名"}
_FIELD_WORDS = (("phone", ("手机", "电话", "号码")), ("birthday", ("生日", "出生")),
                ("email", ("邮箱", "邮件", "email", "mail")), ("address", ("地址", "收货")),
                ("name", ("名字", "姓名", "称呼")))
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
# Checked before single Chinese digits: "一般" is a 3, not a 1.
_RATING_PHRASES = (("非常满意", 5), ("超满意", 5), ("非常不满意", 1), ("很不满意", 1),
                   ("不满意", 2), ("很差", 1), ("太差", 1), ("一般", 3), ("还行", 3),
                   ("满意", 4), ("不错", 4), ("好评", 5), ("差评", 1))


class ValidateMembershipForm(VerifiedFormValidation):
    form = "membership_form"


class ActionQueryMembership(VerifiedFlowAction):
    action_name = "action_query_membership"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        m = common.crm().membership(customer_id)
        lines = [f"您是{m.level}，当前积分 {m.points}（可抵 {m.points_value_yuan:.0f} 元）。"]
        if m.points_expiring and m.points_expire_at:
            lines.append(f"其中 {m.points_expiring} 积分将于 {m.points_expire_at:%Y年%m月%d日} 到期，记得使用哦。")
        if m.coupons:
            coupon_text = "；".join(
                f"{c.title}（满{c.min_spend:.0f}减{c.amount:.0f}，{c.expires_at:%m月%d日}到期"
                f"{'，即将过期' if c.expiring_soon else ''}）"
                for c in m.coupons[:5])
            lines.append(f"可用优惠券 {len(m.coupons)} 张：{coupon_text}。")
        else:
            lines.append("目前没有可用的优惠券。")
        if m.next_level:
            lines.append(f"再消费 {m.spend_to_next_level:.0f} 元可升级为{m.next_level}。")
        dispatcher.utter_message(response="utter_membership", lines="\n".join(lines))


class ValidateProfileForm(VerifiedFormValidation):
    form = "profile_form"
    flow_slots = ("profile_field", "profile_value", "confirm")
    own_intent = "update_profile"
    withdrawal = re.compile(r"不(?:想|要|用)?(?:改|修改|换|更新)了")

    def validate_profile_field(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        field = canonical_field(str(value or ""))
        if field is None:
            dispatcher.utter_message(response="utter_invalid_value",
                                     message="可以修改的资料有：手机号、生日、邮箱、默认收货地址。")
            return {"profile_field": None}
        return {"profile_field": field}

    async def extract_profile_value(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> dict[str, Any]:
        """The new value when it comes with the request ("我要把生日改成1990年5月1日").

        Seen by hand: the birthday was asked for anyway.  When the value itself
        is asked for, the whole message is the answer (domain.yml).
        """
        field = canonical_field(str(tracker.get_slot("profile_field") or ""))
        if field is None:
            return {}

        def find(text: str) -> Optional[str]:
            try:
                return profile_value_in(field, text, asked=False)
            except errors.InvalidInput:
                return None

        return said_in_passing(tracker, "profile_value", find, "confirm")

    def validate_profile_value(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        """Checked as the CRM will check it, so the customer never confirms a value that is then refused."""
        field = canonical_field(str(tracker.get_slot("profile_field") or ""))
        if field is None:
            return {"profile_value": None}
        return checked_slot("profile_value", lambda text: profile_value_in(field, text, asked=True),
                            str(value or "").strip(), dispatcher, tracker)


class ActionAskProfileValue(Action):
    def name(self) -> str:
        return "action_ask_profile_value"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        label = FIELD_LABELS.get(tracker.get_slot("profile_field") or "", "内容")
        dispatcher.utter_message(text=f"请输入新的{label}。")
        return []


class ActionUpdateProfile(VerifiedFlowAction):
    action_name = "action_update_profile"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        if tracker.get_slot("confirm") is not True:
            dispatcher.utter_message(response="utter_profile_kept")
            return
        field = tracker.get_slot("profile_field")
        try:
            common.crm().update_profile(customer_id, field, tracker.get_slot("profile_value"),
                                        common.idempotency_key(tracker, f"profile:{field}"))
        except errors.InvalidInput as refusal:
            dispatcher.utter_message(response="utter_invalid_value", message=refusal.message_zh)
            return
        dispatcher.utter_message(response="utter_profile_updated", field_label=FIELD_LABELS[field],
                                 shown_value=shown_value(field, tracker.get_slot("profile_value")))


def canonical_field(text: str) -> Optional[str]:
    if text in FIELD_LABELS:
        return text
    lowered = text.lower()
    for field, words in _FIELD_WORDS:
        if any(word in lowered for word in words):
            return field
    return None


#: Profile fields whose value a pattern finds inside a sentence (`validation.find_in_text`).
_FOUND_IN_TEXT = {"phone": "mobile", "email": "email", "birthday": "birthday"}


def profile_value_in(field: str, text: str, asked: bool) -> str:
    """The new value of a profile field in what the customer wrote, as the CRM will store it.

    A phone number, e-mail or date is found anywhere in the sentence; a name
    or an address follows 改成/换成/设为…, or, when it was `asked` for, is the
    whole message.  Raises `InvalidInput` with the CRM's Chinese explanation.
    """
    kind = _FOUND_IN_TEXT.get(field)
    found = validation.find_in_text(kind, text) if kind else None
    lead = common.new_value_after_lead(text)
    candidate = found or lead or (text if asked else "")
    value = validation.profile_value(field, candidate, date.today())
    return value.isoformat() if isinstance(value, date) else str(value)


def shown_value(field: str, value: str) -> str:
    """What we echo back: never the full phone or email in chat logs."""
    from crm_adapter.masking import mask_email, mask_phone
    if field == "phone":
        return mask_phone(value)
    if field == "email":
        return mask_email(value)
    return value


class ValidateUnsubscribeForm(VerifiedFormValidation):
    form = "unsubscribe_form"


class ActionUnsubscribe(VerifiedFlowAction):
    action_name = "action_unsubscribe"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        common.crm().set_marketing_consent(customer_id, "all", "marketing", False, "chat",
                                           common.idempotency_key(tracker, "unsubscribe"))
        dispatcher.utter_message(response="utter_unsubscribed")


def parse_rating(text: Optional[str]) -> Optional[int]:
    """1-5 from "5分", "五星", "4", "非常满意" and the like."""
    if not text:
        return None
    match = re.search(r"[1-5]", text)
    if match:
        return int(match.group())
    for phrase, value in _RATING_PHRASES:
        if phrase in text:
            return value
    for char, value in _CN_DIGITS.items():
        if char in text:
            return value
    return None


class ActionRateService(Action):
    def name(self) -> str:
        return "action_rate_service"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        score = parse_rating(common.entity_value(tracker, "rating") or tracker.get_slot("rating"))
        if score is None:
            dispatcher.utter_message(response="utter_ask_rating")
            return [SlotSet("rating", None)]
        escalation_id = tracker.get_slot("csat_escalation_id")  # asked after a human agent's chat
        common.crm().record_csat(common.customer_id_of(tracker), common.channel_of(tracker),
                                 tracker.sender_id, score, common.idempotency_key(tracker, "csat"),
                                 comment=(tracker.latest_message or {}).get("text"),
                                 escalation_id=escalation_id or None)
        dispatcher.utter_message(response="utter_rating_thanks" if score >= 3 else "utter_rating_sorry",
                                 score=score)
        return [SlotSet("rating", None)] + ([SlotSet("csat_escalation_id", None)] if escalation_id else [])
