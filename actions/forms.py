"""The one base class for forms that need to know who the customer is.

Every flow that touches personal data (orders, refunds, points, profile,
invoices, complaint status, consent) asks for verification the same way:
a customer whose channel identity is bound is already verified; anyone else
gives an order number and the last four digits of the phone on file.  The
base class adds those two slots when needed, performs the check without
revealing whether the order exists, locks after repeated failures, and lets a
customer leave a form ("算了"), ask for a person, or ask an FAQ mid-way.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecutionRejected, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions import common, handoff
from crm_adapter import errors

logger = logging.getLogger(__name__)

MAX_VERIFY_ATTEMPTS = 3
# Intents that end or divert a form when the customer says them mid-way.
_STOP_INTENTS = {"deny"}
_HUMAN_INTENTS = {"request_human"}
#: Intents an answer to a form's question is read as, right or wrong ("我忘了" is a bad birthday, not a request).
_ANSWER_INTENTS = {"inform", "affirm", "deny", "nlu_fallback", "out_of_scope", "thanks", "greet"}
_LIKELY = 0.6   # confidence to read a non-answer as an interruption
_SURE = 0.9     # confidence to read a free-text answer as an interruption
# Slots whose answer is free text: anything validates, so intent decides first.
_FREE_TEXT_SLOTS = {"complaint_description", "return_reason", "profile_value"}
# In a free-text slot a "no" ends the form only when it reads as a refusal: a
# reason or description says 不 and 没有 too, and the intent model reads
# 「音质不好」 as `deny` at 0.96 (「不好」 is a deny example).  A refusal is either
# said in words (算了不退了, 我想了想还是不退货了吧), or nothing but "no":
# negations and fillers with nothing left over (不用了谢谢, 不了不了, 等等 先不要).
# 「音质不好」, 「不合适」, 「尺码不对」 leave 音质, 合适, 尺码 and are reasons; up to
# session 16 any "no" of at most 8 characters ended the form, and those with it.
_REFUSAL_WORDS = ("算了", "不用了", "不退", "不投诉", "不改", "取消", "不办了", "不弄了", "不需要了",
                  "别弄", "不折腾", "先不要", "不要提交", "别提交")
_NEGATIONS = re.compile(r"不是|不要|不用|不行|不必|不需要|不想|不了|不确认|不同意|不可以|拒绝|没有|木有|没|不|否|别"
                        r"|nope|nah|no|n|8用")
_FILLERS = re.compile(r"[了吧啊呢哈啦哦呀嘛的亲谢先还是暂时我再想想看麻烦等]|thanks|thank you|[\W_]")
# A short question confidently read as another request is asked on the side,
# not written as the answer: 「我还有多少积分」 was filed as a complaint's
# description.  A description that asks something is longer and reads as the
# flow's own intent (「到现在都没人理，这是什么服务？」 is `complain`).
_SIDE_QUESTION_MAX_CHARS = 15
_QUESTION = re.compile(r"[?？]|吗|呢\s*$|多少|几[个天号点时次]|什么时候|怎么(?:样|办|查|算|用|弄)|哪[里儿些个]|能不能|可不可以|有没有|是否")


class VerifiedFormValidation(FormValidationAction):
    """Validation for a form whose flow needs a verified customer.

    Subclasses set `form` (the form name), `flow_slots` (the slots of the
    flow itself, in order) and `needs_order` (whether the flow is about one
    order even for a verified customer).
    """

    form: str = ""
    flow_slots: tuple[str, ...] = ()
    #: The intent that starts this flow, and how a customer takes it back in
    #: words.  "我想了想还是不退货了吧" is read as request_return (it is about
    #: returns), not deny, and "还是不要退了" as deny with half the confidence a
    #: free-text answer needs; said in the free-text slot, both end the form.
    own_intent: str = ""
    withdrawal: Optional[re.Pattern[str]] = None
    #: Questions the free-text slot must not swallow: intent -> the words that
    #: make the message that question.  Both must agree; `divert` answers it.
    diversions: dict[str, re.Pattern[str]] = {}
    needs_order: bool = False
    needs_verification: bool = True

    def name(self) -> str:
        return f"validate_{self.form}"

    # --- which slots to ask for ---------------------------------------
    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        if tracker.get_slot("flow_blocked"):
            return []
        slots: list[str] = []
        if self.needs_verification and not tracker.get_slot("verified"):
            if (tracker.get_slot("verify_attempts") or 0) >= MAX_VERIFY_ATTEMPTS:
                return []
            slots += ["order_number", "phone_last4"]
        elif self.needs_order:
            slots.append("order_number")
        slots += self.dynamic_flow_slots(tracker)
        return slots

    def dynamic_flow_slots(self, tracker: Tracker) -> list[str]:
        """The flow's own slots; override when some depend on earlier answers."""
        return list(self.flow_slots)

    # --- interruptions ------------------------------------------------
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        """Validate, letting the customer leave or divert the form.

        A free-text answer (a complaint description, a return reason) could be
        anything, so a confident "算了" or "转人工" is honoured before it is
        taken as the answer.  Any other slot is validated first: only a
        message that does not answer the question is read as an interruption,
        so "个人" as an invoice title is never mistaken for a request.
        """
        try:
            # After an aside the form resumes with the aside's message still the
            # latest one; read as an interruption again, it looped (an FAQ answered,
            # then 「没太理解」).  Only a message the customer just sent is read.
            requested = tracker.get_slot("requested_slot")
            if not self._customer_just_wrote(tracker) or requested not in self._own_slots(tracker):
                # Rasa leaves the last form's requested_slot set when another form
                # starts: 「我还有多少积分」 asked mid-complaint then rejected the
                # membership form too, as a side question in *its* description.
                requested = None
            free_text = requested in _FREE_TEXT_SLOTS
            if free_text:
                interrupted = await self._interruption(dispatcher, tracker, _SURE)
                if interrupted is not None:
                    return interrupted
                if self._side_question(tracker):
                    return self._hand_on(requested)
            scratch = CollectingDispatcher()  # the validators' replies, sent only if the answer stands
            events = await super().run(scratch, tracker, domain)
            if free_text:
                if self._another_request(tracker, events, requested):
                    # Seen by hand: asked for a new birthday, a customer who went
                    # on to 「以后别给我发广告了」 and 「给你们打个3分吧」 was told
                    # 「生日格式没看懂」 every time.
                    return self._hand_on(requested)
            elif requested is not None and not any(
                    e.get("name") == requested and e.get("value") is not None for e in events
                    if e.get("event") == "slot"):
                interrupted = await self._interruption(dispatcher, tracker, _LIKELY)
                if interrupted is not None:
                    return interrupted
            dispatcher.messages.extend(scratch.messages)
            return events
        except errors.CRMUnavailable:
            logger.warning("CRM unavailable while validating %s", self.form)
            dispatcher.utter_message(response="utter_crm_unavailable")
            return [SlotSet("flow_blocked", True), SlotSet("requested_slot", None)]

    def _own_slots(self, tracker: Tracker) -> set[str]:
        return {"order_number", "phone_last4", *self.flow_slots, *self.dynamic_flow_slots(tracker)}

    def _customer_just_wrote(self, tracker: Tracker) -> bool:
        """The form runs on a message the customer just sent, not resuming after an aside.

        Rasa hands the validation a tracker ending with the form's own run, so
        the action before that tells: listening (a new message) or the aside.
        """
        for event in reversed(tracker.events):
            if event.get("event") == "action" and event.get("name") != self.form:
                return event.get("name") == "action_listen"
        return True

    async def _interruption(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                            min_confidence: float) -> Optional[list[EventType]]:
        latest = tracker.latest_message or {}
        intent = (latest.get("intent") or {}).get("name")
        confidence = (latest.get("intent") or {}).get("confidence") or 0.0
        requested = tracker.get_slot("requested_slot")
        if requested is None:
            return None  # form just activated: let slot filling decide
        if requested in _FREE_TEXT_SLOTS and self._withdraws(intent, latest.get("text")):
            # The words are the evidence here, at any confidence: "还是不要退了"
            # is deny at 0.50 and "我想了想还是不退货了吧" request_return at 0.90.
            dispatcher.utter_message(response="utter_form_stopped")
            return self._end_form()
        if requested in _FREE_TEXT_SLOTS and intent in self.diversions \
                and self.diversions[intent].search(latest.get("text") or ""):
            # "投诉进度怎么样了" asked while a new complaint's description is
            # awaited is that question, not the description (it was filed as one).
            await self.divert(dispatcher, tracker, intent)
            return self._end_form()
        if confidence < min_confidence:
            return None  # unsure: let slot filling decide
        if intent in _STOP_INTENTS and requested == "order_number" and _offered_order(tracker) \
                and not any(word in (latest.get("text") or "") for word in _REFUSAL_WORDS):
            # 「不是」 to 「是刚才的订单 … 吗？」: another order; the plain question follows.
            return [SlotSet("recent_order", None)]
        if intent in _STOP_INTENTS and requested != "confirm":
            if requested in _FREE_TEXT_SLOTS and not _reads_as_refusal(latest.get("text")):
                return None  # the customer's answer, whatever words it uses
            dispatcher.utter_message(response="utter_form_stopped")
            return self._end_form()
        if intent in _HUMAN_INTENTS:
            events = await handoff.escalate(dispatcher, tracker, reason="request_human")
            return events + self._end_form()
        if intent == "faq" and requested not in _FREE_TEXT_SLOTS:
            response = _faq_response_name(latest)
            if response:
                dispatcher.utter_message(response=response)
                return [SlotSet(requested, None)]
        return None

    async def divert(self, dispatcher: CollectingDispatcher, tracker: Tracker, intent: str) -> None:
        """Answer a diverting question (see `diversions`); the form then ends."""
        raise NotImplementedError

    def _another_request(self, tracker: Tracker, events: list[EventType], requested: str) -> bool:
        """A free-text answer the slot refused, confidently classified as some other request."""
        refused = any(e.get("event") == "slot" and e.get("name") == requested and e.get("value") is None
                      for e in events)
        intent = (tracker.latest_message or {}).get("intent") or {}
        return refused and (intent.get("confidence") or 0.0) >= _LIKELY \
            and intent.get("name") not in _ANSWER_INTENTS | {self.own_intent}

    def _side_question(self, tracker: Tracker) -> bool:
        """A short question, surely some other request, asked where free text is awaited."""
        latest = tracker.latest_message or {}
        intent = latest.get("intent") or {}
        text = latest.get("text") or ""
        return (intent.get("confidence") or 0.0) >= _SURE \
            and intent.get("name") not in _ANSWER_INTENTS | {self.own_intent} \
            and sum(1 for ch in text if ch.isalnum()) <= _SIDE_QUESTION_MAX_CHARS \
            and _QUESTION.search(text) is not None

    def _hand_on(self, requested: str) -> list[EventType]:
        """Rasa's unhappy path, as for any slot that extracts nothing: the form's
        turn is rejected, the rules answer the message, then the form asks again
        (a form the message starts takes over).  The text the from_text mapping
        put into the slot is cleared, or the resumed form would take it."""
        return [SlotSet(requested, None), ActionExecutionRejected(self.form)]

    def _withdraws(self, intent: Optional[str], text: Optional[str]) -> bool:
        """The flow's own verb negated, read as a "no" or as the flow's own intent: the request taken back."""
        return (intent in _STOP_INTENTS or (bool(self.own_intent) and intent == self.own_intent)) \
            and self.withdrawal is not None and self.withdrawal.search(text or "") is not None

    @staticmethod
    def _end_form() -> list[EventType]:
        return [SlotSet("flow_blocked", True), SlotSet("requested_slot", None)]

    def validate_confirm(self, value: Any, dispatcher: CollectingDispatcher,
                         tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        answer = value if isinstance(value, bool) else yes_or_no(str(value or ""))
        if answer is None:
            dispatcher.utter_message(response="utter_ask_yes_no")
        return {"confirm": answer}

    # --- verification -------------------------------------------------
    async def extract_order_number(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> dict[str, Any]:
        """「是」 to 「是刚才的订单 … 吗？」 (domain.yml, `utter_ask_order_number`) is that order."""
        recent = _offered_order(tracker)
        text = common.latest_text(tracker)
        if tracker.get_slot("requested_slot") != "order_number" or not recent or common.first_order_number(text):
            return {}
        return {"order_number": recent} if yes_or_no(text) is True else {}

    def validate_order_number(self, value: Any, dispatcher: CollectingDispatcher,
                              tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        number = common.first_order_number(str(value)) if value else None
        if not number:
            dispatcher.utter_message(response="utter_invalid_order_number")
            return {"order_number": None}
        customer_id = common.customer_id_of(tracker)
        if customer_id is not None:
            if common.crm().get_order(customer_id, number) is None:
                dispatcher.utter_message(response="utter_order_not_found", order_number=number)
                return {"order_number": None}
            return {"order_number": number, **self.check_order(number, dispatcher, tracker)}
        last4 = tracker.get_slot("phone_last4")
        if last4 and common.LAST4_RE.fullmatch(str(last4)):
            return self._verify(number, str(last4), dispatcher, tracker)
        return {"order_number": number}

    def validate_phone_last4(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        match = common.LAST4_RE.search(str(value or ""))
        if not match:
            dispatcher.utter_message(response="utter_invalid_phone_last4")
            return {"phone_last4": None}
        number = tracker.get_slot("order_number")
        if not number:
            return {"phone_last4": match.group(1)}
        return self._verify(str(number), match.group(1), dispatcher, tracker)

    def _verify(self, number: str, last4: str, dispatcher: CollectingDispatcher,
                tracker: Tracker) -> dict[str, Any]:
        customer = common.crm().verify_by_order(number, last4)
        if customer is None:
            attempts = int(tracker.get_slot("verify_attempts") or 0) + 1
            logger.info("Verification failed for sender (attempt %d)", attempts)
            if attempts >= MAX_VERIFY_ATTEMPTS:
                dispatcher.utter_message(response="utter_verify_locked")
            else:
                dispatcher.utter_message(response="utter_verify_failed")
            return {"order_number": None, "phone_last4": None, "verify_attempts": attempts}
        dispatcher.utter_message(response="utter_verified", customer_name=customer.name)
        slots = {e["name"]: e["value"] for e in common.identity_slots(customer)}
        tracker.slots.update(slots)
        return {**slots, "order_number": number, "phone_last4": last4,
                **self.check_order(number, dispatcher, tracker)}

    def check_order(self, number: str, dispatcher: CollectingDispatcher,
                    tracker: Tracker) -> dict[str, Any]:
        """Flow-specific check of an order the customer owns (e.g. cancellable?).

        Return slot updates; set flow_blocked to end the form after explaining.
        """
        return {}


_NO_WORDS = ("不", "别", "先不", "算了", "没", "取消吧不", "no", "否")
_YES_WORDS = ("是", "对", "确认", "确定", "好", "嗯", "可以", "行", "没问题", "ok", "yes", "要")


def yes_or_no(text: str) -> Optional[bool]:
    """Read a confirmation from the words, whatever intent NLU gave it."""
    lowered = text.lower()
    if "没问题" in lowered or "没错" in lowered:
        return True
    if any(word in lowered for word in _NO_WORDS):
        return False
    if any(word in lowered for word in _YES_WORDS):
        return True
    return None


def _faq_response_name(latest: dict) -> Optional[str]:
    """The retrieval response chosen for an FAQ message, e.g. utter_faq/warranty."""
    selector = (latest.get("response_selector") or {}).get("faq") or {}
    key = (selector.get("response") or {}).get("utter_action")
    if key:
        return key
    intent_key = (selector.get("response") or {}).get("intent_response_key")
    return f"utter_{intent_key}" if intent_key else None


class VerifiedFlowAction(Action):
    """The submit action of a verified form: outage, lock-out and reset in one place.

    Subclasses set `action_name` and implement `act` for a customer the form
    verified; the flow's slots are cleared afterwards whatever happened.
    """

    action_name: str = ""

    def name(self) -> str:
        return self.action_name

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        customer_id = common.flow_customer(dispatcher, tracker)
        if customer_id is not None:
            await self.act(dispatcher, tracker, customer_id)
        return common.reset_flow_slots(tracker) + remember_order(tracker)

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        raise NotImplementedError


def said_in_passing(tracker: Tracker, slot: str, find: Callable[[str], Optional[str]],
                    *also_asked: str) -> dict[str, Any]:
    """A slot's value found by `find` in the latest message, for a value given before it is asked.

    When the slot itself (or one of `also_asked`) is being asked, the whole
    message is the answer (domain.yml's from_text mapping), so nothing is found here.
    """
    if tracker.get_slot("requested_slot") in (slot, *also_asked):
        return {}
    found = find(common.latest_text(tracker))
    return {slot: found} if found else {}


def checked_slot(slot: str, check: Callable[[Any], Any], value: Any, dispatcher: CollectingDispatcher,
                 tracker: Tracker, noted: Optional[str] = None, noted_as: str = "") -> dict[str, Any]:
    """A slot's value put through the CRM's own check (a `crm_adapter.validation` function).

    Refused, the customer reads the CRM's reason; given before it was asked
    for, it is acknowledged with the response `noted` (the value as `noted_as`),
    so the customer can tell it was heard.
    """
    try:
        accepted = check(value)
    except errors.InvalidInput as refusal:
        dispatcher.utter_message(response="utter_invalid_value", message=refusal.message_zh)
        return {slot: None}
    if noted and tracker.get_slot("requested_slot") != slot:
        dispatcher.utter_message(response=noted, **{noted_as: accepted})
    return {slot: accepted}


def remember_order(tracker: Tracker) -> list[EventType]:
    """Keep the order a finished flow was about, for the next flow's question.

    Seen by hand: told that 260101000012 had shipped and its address could no
    longer change, a customer said 「那我要退货」 and was asked for the order
    number from scratch.  Only a verified customer's own order is kept (the
    form checked it belongs to them before it filled `order_number`).
    """
    number = tracker.get_slot("order_number")
    if not number or common.customer_id_of(tracker) is None or number == tracker.get_slot("recent_order"):
        return []
    return [SlotSet("recent_order", number)]


def _offered_order(tracker: Tracker) -> Optional[str]:
    """The recent order a verified customer is offered when asked for an order number
    (domain.yml, `utter_ask_order_number`)."""
    recent = tracker.get_slot("recent_order")
    return str(recent) if recent and common.customer_id_of(tracker) is not None else None


def _reads_as_refusal(text: Optional[str]) -> bool:
    """Saying so in words, or nothing but "no" (see `_REFUSAL_WORDS`)."""
    text = text or ""
    if any(word in text for word in _REFUSAL_WORDS):
        return True
    return _FILLERS.sub("", _NEGATIONS.sub("", text.lower())) == ""
