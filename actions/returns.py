"""Return requests and refund progress."""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.forms import VerifiedFlowAction, VerifiedFormValidation
from crm_adapter import errors
from crm_adapter.views import OrderView


class ValidateReturnForm(VerifiedFormValidation):
    form = "return_form"
    needs_order = True
    flow_slots = ("return_reason",)
    own_intent = "request_return"
    # "不退了", "不退货了", "还是不退吧"; not a merchant's refusal ("客服说不退").
    withdrawal = re.compile(r"(?<![说讲])不(?:想|要|打算)?退(?!款|不)")

    def check_order(self, number: str, dispatcher: CollectingDispatcher,
                    tracker: Tracker) -> dict[str, Any]:
        order = common.crm().get_order(common.customer_id_of(tracker), number)
        if order is None or order.can_return:
            return {}
        dispatcher.utter_message(response="utter_return_not_allowed",
                                 reason=return_refusal(order))
        return {"flow_blocked": True, "requested_slot": None}

    def validate_return_reason(self, value: Any, dispatcher: CollectingDispatcher,
                               tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        if not text:
            return {"return_reason": None}
        return {"return_reason": text[:500]}


def return_refusal(order: OrderView) -> str:
    """Why this order cannot be returned, and what the customer can do instead."""
    number = order.order_number
    if order.status in ("paid", "pending_payment"):
        return f"订单 {number} 还没有发货，不需要退货，直接对我说“取消订单”就可以退款。"
    if order.status == "shipped":
        return f"订单 {number} 还在运输途中，签收后才能申请退货；如不想要了也可以直接拒收。"
    if order.status == "cancelled":
        return f"订单 {number} 已经取消了，款项会原路退回，无需退货。"
    if order.status == "returned":
        return f"订单 {number} 已经退过货了。"
    if order.open_return_number:
        # Seen in the tests: asked again, it said the window had closed, on a date still to come.
        return (f"订单 {number} 已经有一个退货申请在处理中（{order.open_return_number}），不用重复申请；"
                "想了解进度可以问我“退款到哪了”。")
    if order.return_deadline:
        return (f"订单 {number} 的退货期限已于 {order.return_deadline:%Y年%m月%d日} 截止。"
                "如果是质量问题，可以对我说“投诉质量问题”，我们会按保修政策处理。")
    return f"订单 {number} 暂不支持退货，如有疑问可以说“转人工”。"


class ActionCreateReturn(VerifiedFlowAction):
    action_name = "action_create_return"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        number = tracker.get_slot("order_number")
        if not number:
            return
        try:
            request = common.crm().create_return(
                customer_id, number, tracker.get_slot("return_reason"),
                common.idempotency_key(tracker, "create_return"))
        except errors.InvalidInput as refusal:
            dispatcher.utter_message(response="utter_return_not_allowed", reason=refusal.message_zh)
            return
        dispatcher.utter_message(
            response="utter_return_created", return_number=request.return_number,
            next_steps="审核通过后会短信通知您寄回地址，仓库签收后1-3个工作日内原路退款。")


class ValidateRefundForm(VerifiedFormValidation):
    form = "refund_form"


class ActionQueryRefund(VerifiedFlowAction):
    action_name = "action_query_refund"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        number = tracker.get_slot("order_number")
        returns = common.crm().returns_for_customer(customer_id, order_number=number)
        if not returns:
            if number:
                dispatcher.utter_message(response="utter_no_refunds", order_number=number)
            else:
                dispatcher.utter_message(response="utter_refund_status",
                                         lines="您目前没有退款记录。如需退货退款，可以对我说“我要退货”。")
            return
        lines = [refund_line(r) for r in returns[:3]]
        dispatcher.utter_message(response="utter_refund_status", lines="\n".join(lines))


def refund_line(request: Any) -> str:
    line = f"退货单 {request.return_number}（订单 {request.order_number}）：{request.status_label}"
    if request.refund_amount:
        line += f"，退款金额 {request.refund_amount:.2f} 元"
    if request.status == "refunded":
        line += "，已原路退回"
    elif request.refund_eta:
        line += f"，预计 {request.refund_eta:%m月%d日} 前到账"
    return line + "。"
