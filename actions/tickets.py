"""Payment problems, invoice requests and complaints: each becomes a record
with a number the customer can quote later."""
from __future__ import annotations

import re
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common, handoff, upset
from actions.forms import VerifiedFlowAction, VerifiedFormValidation, checked_slot, said_in_passing
from crm_adapter import errors, validation

PAYMENT_PROBLEMS = ("failed", "double_charged", "charged_no_order")
_PAYMENT_WORDS = (("double_charged", ("重复", "两次", "扣了2次", "多扣", "扣了两")),
                  ("charged_no_order", ("扣款", "扣钱", "扣了钱", "钱扣了", "没成功", "没显示", "未支付")),
                  ("failed", ("失败", "付不了", "支付不了", "付款不了", "不成功", "付不出")))
COMPLAINT_CATEGORIES = ("logistics", "quality", "service", "price", "after_sales", "other")
_CATEGORY_WORDS = (("logistics", ("物流", "快递", "配送", "送货", "发货")),
                   ("quality", ("质量", "坏", "破损", "假货", "瑕疵")),
                   ("service", ("态度", "客服", "服务")),
                   ("price", ("价格", "价钱", "贵", "降价", "差价")),
                   ("after_sales", ("售后", "退货", "退款", "维修", "换货")),
                   ("other", ("其他", "别的")))
_NAMED_CATEGORY_WORDS = tuple(entry for entry in _CATEGORY_WORDS if entry[0] != "other")
PERSONAL_TITLES = ("个人", "本人", "自己")


def keyword_choice(text: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> Optional[str]:
    for value, words in table:
        if text == value or any(word in text for word in words):
            return value
    return None


class ValidatePaymentForm(VerifiedFormValidation):
    form = "payment_form"
    flow_slots = ()

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        problem = tracker.get_slot("payment_problem")
        if problem is None:
            return ["payment_problem"]
        if problem == "failed":
            return ["payment_problem"]  # advice only, nothing personal to look at
        slots = ["payment_problem"] + await super().required_slots(domain_slots, dispatcher,
                                                                    tracker, domain)
        if problem == "double_charged" and "order_number" not in slots and not tracker.get_slot(
                "flow_blocked"):
            slots.append("order_number")  # a double charge is always about one order
        return slots

    def validate_payment_problem(self, value: Any, dispatcher: CollectingDispatcher,
                                 tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        problem = keyword_choice(str(value or ""), _PAYMENT_WORDS)
        if problem is None:
            dispatcher.utter_message(response="utter_ask_payment_problem")
            return {"payment_problem": None}
        return {"payment_problem": problem}


class ActionPaymentIssue(Action):
    def name(self) -> str:
        return "action_payment_issue"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        problem = tracker.get_slot("payment_problem")
        if tracker.get_slot("flow_blocked") or problem is None:
            return common.reset_flow_slots(tracker)
        if problem == "failed":
            dispatcher.utter_message(response="utter_payment_failed_help")
            return common.reset_flow_slots(tracker)
        customer_id = common.flow_customer(dispatcher, tracker)
        if customer_id is None:
            return common.reset_flow_slots(tracker)
        description = (tracker.latest_message or {}).get("text") or ""
        ticket = common.crm().create_payment_ticket(
            customer_id, problem, description, common.idempotency_key(tracker, "payment_ticket"),
            order_number=tracker.get_slot("order_number"))
        explanation = ("重复扣款的金额会在核实后1-3个工作日内原路退回。" if problem == "double_charged"
                       else "扣款未生成订单的，银行通常会在1-7个工作日内自动退回；若未退回我们会人工处理。")
        dispatcher.utter_message(response="utter_payment_ticket_created",
                                 ticket_number=ticket.ticket_number, explanation=explanation)
        return common.reset_flow_slots(tracker)


class ValidateInvoiceForm(VerifiedFormValidation):
    form = "invoice_form"
    needs_order = True

    def dynamic_flow_slots(self, tracker: Tracker) -> list[str]:
        title = tracker.get_slot("invoice_title") or ""
        if title and any(word in title for word in PERSONAL_TITLES):
            return ["invoice_title", "invoice_email"]
        return ["invoice_title", "tax_number", "invoice_email"]

    async def extract_invoice_title(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> dict[str, Any]:
        """The title when it comes before it is asked for (「我要开发票，抬头是上海某某科技有限公司」).

        Seen by hand: a company name typed where the order number was asked
        got 「请问有什么可以帮您？」 and the order number asked again.
        """
        if tracker.get_slot("invoice_title"):
            return {}
        return said_in_passing(tracker, "invoice_title", invoice_title_in)

    def validate_invoice_title(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        title = str(value or "").strip()
        if any(word in title for word in PERSONAL_TITLES):
            title = "个人"
        return checked_slot("invoice_title", validation.invoice_title, title, dispatcher, tracker,
                            noted="utter_invoice_title_noted", noted_as="title")

    def validate_tax_number(self, value: Any, dispatcher: CollectingDispatcher,
                            tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        tax_number = validation.find_in_text("tax_number", value)
        if not tax_number:
            dispatcher.utter_message(response="utter_invalid_tax_number")
        return {"tax_number": tax_number}

    def validate_invoice_email(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        email = validation.find_in_text("email", value)
        if not email:
            dispatcher.utter_message(response="utter_invalid_email")
        return {"invoice_email": email}


#: Words that only ask to complain, with nothing of what happened: what is left
#: of 「我要投诉你们！！」 once they are taken out is empty.
_COMPLAINT_REQUEST = re.compile(r"我|要|想|必须|一定|投诉|举报|你们|你|了|啊|呢|吧|一下|[\W_]")


#: A company's name as it goes on an invoice, inside a sentence.
_COMPANY_NAME = re.compile(r"[\u4e00-\u9fffA-Za-z0-9（）()·]{2,60}?(?:有限责任公司|股份有限公司|有限公司|分公司|公司|集团"
                           r"|研究院|研究所|事务所|工作室|合作社|大学|学院|医院|银行|协会|基金会)")
#: What comes before the name: 「抬头是」, 「开给」.
_TITLE_LEAD = re.compile(r"^.*?(?:抬头(?:是|为|写|就写)?|开给|开成|开到)[:：]?")
_NOT_A_NAME = ("我", "你", "贵", "本", "这", "那", "咱", "他", "她")  # 「我们公司」 is not a name
_PERSONAL_INVOICE = re.compile(r"个人(?:发票|抬头|的发票)|抬头(?:是|为|写)?(?:个人|本人)|开给(?:个人|我自己|自己)")


def invoice_title_in(text: str) -> Optional[str]:
    """An invoice title said in passing: a company's full name, or that it is a personal invoice."""
    if _PERSONAL_INVOICE.search(text):
        return "个人"
    match = _COMPANY_NAME.search(text)
    if match is None:
        return None
    name = _TITLE_LEAD.sub("", match.group())
    return name if len(name) >= 4 and not name.startswith(_NOT_A_NAME) else None


class ActionCreateInvoiceRequest(VerifiedFlowAction):
    action_name = "action_create_invoice_request"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        number = tracker.get_slot("order_number")
        if not number:
            return
        email = tracker.get_slot("invoice_email")
        try:
            request = common.crm().create_invoice_request(
                customer_id, number, tracker.get_slot("invoice_title"),
                tracker.get_slot("tax_number"), email,
                common.idempotency_key(tracker, "invoice"))
        except errors.InvalidInput as refusal:
            dispatcher.utter_message(response="utter_invalid_value", message=refusal.message_zh)
            return
        from crm_adapter.masking import mask_email
        dispatcher.utter_message(response="utter_invoice_created",
                                 request_number=request.request_number, order_number=number,
                                 email=mask_email(email))


class ValidateComplaintForm(VerifiedFormValidation):
    """Anyone may complain; an unverified customer leaves a contact phone."""

    form = "complaint_form"
    needs_verification = False
    own_intent = "complain"
    withdrawal = re.compile(r"不(?:想|要|用|打算)?投诉了")
    diversions = {"query_complaint": re.compile(
        r"进度|进展|怎么样了|处理(?:得|到)?(?:怎么样|如何|哪|好了没)|到哪一步|(?:有|出)(?:没有)?(?:结果|回复|答复)"
        r"|(?:回复|答复|结果)了?(?:吗|没)")}

    async def divert(self, dispatcher: CollectingDispatcher, tracker: Tracker, intent: str) -> None:
        """The customer asked how their complaints stand: say so, with the tickets when we know who they are."""
        customer_id = common.customer_id_of(tracker)
        if customer_id is None:
            dispatcher.utter_message(response="utter_complaint_not_filed_ask_status")
            return
        dispatcher.utter_message(response="utter_complaint_not_filed")
        utter_complaint_status(dispatcher, customer_id)

    def dynamic_flow_slots(self, tracker: Tracker) -> list[str]:
        slots = ["complaint_category", "complaint_description"]
        if common.customer_id_of(tracker) is None:
            slots.append("contact_phone")
        return slots

    async def extract_complaint_category(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                         domain: DomainDict) -> dict[str, Any]:
        """The category the complaint itself names, when the entity extractor found none.

        快递三天了还没到，我要投诉 already says "logistics"; asking 哪方面 next reads
        as if nobody listened.  Only on the message that opened the form (nothing
        asked yet, intent complain), from the same keywords a typed answer is read
        with; "other" is never inferred.
        """
        if tracker.get_slot("complaint_category") or tracker.get_slot("requested_slot"):
            return {}
        message = tracker.latest_message or {}
        if (message.get("intent") or {}).get("name") != "complain":
            return {}
        category = keyword_choice(str(message.get("text") or ""), _NAMED_CATEGORY_WORDS)
        return {"complaint_category": category} if category else {}

    def validate_complaint_category(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        category = keyword_choice(str(value or ""), _CATEGORY_WORDS)
        if category is None:
            # A description typed instead of a category: keep it, file under "other".
            text = str(value or "").strip()
            if len(text) >= 8 and tracker.get_slot("requested_slot") == "complaint_category":
                return {"complaint_category": "other", "complaint_description": text[:2000]}
            dispatcher.utter_message(response="utter_ask_complaint_category")
            return {"complaint_category": None}
        return {"complaint_category": category}

    def validate_complaint_description(self, value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        if len(text) < 2:
            return {"complaint_description": None}
        if (len(text) <= 4 and keyword_choice(text, _CATEGORY_WORDS)) or not _COMPLAINT_REQUEST.sub("", text):
            # "物流" answers the category question, not "what happened", and
            # 「我要投诉！！」 says again that there is a complaint (seen by hand: it
            # was filed as one): a ticket that says nothing cannot be followed up.
            dispatcher.utter_message(response="utter_ask_complaint_details")
            return {"complaint_description": None}
        return {"complaint_description": text[:2000]}

    def validate_contact_phone(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        phone = validation.find_in_text("mobile", value)
        if not phone:
            dispatcher.utter_message(response="utter_invalid_phone")
        return {"contact_phone": phone}


class ActionSubmitComplaint(Action):
    def name(self) -> str:
        return "action_submit_complaint"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        description = tracker.get_slot("complaint_description")
        if tracker.get_slot("flow_blocked") or not description:
            return common.reset_flow_slots(tracker)
        customer_id = common.customer_id_of(tracker)
        order_number = tracker.get_slot("order_number") if customer_id is not None else None
        if order_number and common.crm().get_order(customer_id, order_number) is None:
            order_number = None  # never link an order the customer does not own
        complaint = common.crm().create_complaint(
            customer_id, tracker.get_slot("complaint_category") or "other", description,
            common.channel_of(tracker), tracker.sender_id,
            common.idempotency_key(tracker, "complaint"), order_number=order_number,
            contact_phone=tracker.get_slot("contact_phone"))
        dispatcher.utter_message(response="utter_complaint_created",
                                 ticket_number=complaint.ticket_number,
                                 category=complaint.category_label,
                                 severity=complaint.severity_label,
                                 due=f"{complaint.sla_due_at:%m月%d日 %H:%M}")
        events = common.reset_flow_slots(tracker)
        if complaint.severity == "high":
            dispatcher.utter_message(response="utter_complaint_escalated")
            events += await handoff.escalate(dispatcher, tracker, reason="high_severity_complaint",
                                             complaint_ticket=complaint.ticket_number)
        elif not tracker.get_slot("escalation_id") and upset.upset_enough(tracker):
            # The upset policy stays quiet inside the form; the customer's
            # anger while filing it is acted on here, with the ticket attached.
            dispatcher.utter_message(response="utter_escalate_upset")
            events += await handoff.escalate(dispatcher, tracker, reason=upset.REASON,
                                             complaint_ticket=complaint.ticket_number)
        return events


class ValidateComplaintStatusForm(VerifiedFormValidation):
    form = "complaint_status_form"


class ActionQueryComplaint(VerifiedFlowAction):
    action_name = "action_query_complaint"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        utter_complaint_status(dispatcher, customer_id)


def utter_complaint_status(dispatcher: CollectingDispatcher, customer_id: int) -> None:
    """The customer's three latest complaints and where each stands."""
    complaints = common.crm().complaints_for_customer(customer_id, open_only=False)[:3]
    if not complaints:
        dispatcher.utter_message(response="utter_no_complaints")
        return
    lines = [f"工单 {c.ticket_number}（{c.category_label}）：{c.status_label}，"
             f"{'承诺' if c.status in ('open', 'pending') else '提交于'} "
             f"{(c.sla_due_at if c.status in ('open', 'pending') else c.created_at):%m月%d日 %H:%M}"
             f"{'前答复' if c.status in ('open', 'pending') else ''}。"
             for c in complaints]
    dispatcher.utter_message(response="utter_complaint_status", lines="\n".join(lines))
