"""Order status, cancellation and address changes."""
from __future__ import annotations

import re
from typing import Any, Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.forms import VerifiedFlowAction, VerifiedFormValidation, checked_slot, said_in_passing
from crm_adapter import errors, validation
from crm_adapter.views import OrderView


def items_summary(order: OrderView) -> str:
    names = [f"{item.name}×{item.quantity}" for item in order.items]
    return "、".join(names[:3]) + ("等" if len(names) > 3 else "")


def status_detail(order: OrderView) -> str:
    """The sentence after the status: where the parcel is or what comes next."""
    if order.status == "shipped":
        parts = [f"{order.carrier}运单号 {order.tracking_number}"]
        if order.logistics_note:
            parts.append(f"最新物流：{order.logistics_note}")
        return "，".join(parts) + "。"
    if order.status == "paid":
        return "仓库正在备货，一般24小时内发出。"
    if order.status == "pending_payment":
        return "订单还未支付，超过30分钟未支付会自动关闭。"
    if order.status == "delivered" and order.delivered_at:
        return f"已于 {order.delivered_at:%m月%d日} 签收，有问题可以申请退换货。"
    if order.status == "cancelled":
        return "如已付款，款项会原路退回。"
    return ""


def _blocked_hint(status: str) -> str:
    if status == "shipped":
        return "订单已发出，您可以拒收，或收货后申请7天无理由退货。"
    if status == "delivered":
        return "订单已签收，如需退货可以对我说“我要退货”。"
    return ""


class ValidateOrderQueryForm(VerifiedFormValidation):
    form = "order_query_form"


class ActionQueryOrder(VerifiedFlowAction):
    action_name = "action_query_order"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        number = tracker.get_slot("order_number")
        order = (common.crm().get_order(customer_id, number) if number
                 else common.crm().latest_order(customer_id))
        if order is None:
            if number:
                dispatcher.utter_message(response="utter_order_not_found", order_number=number)
            else:
                dispatcher.utter_message(response="utter_no_orders")
        else:
            dispatcher.utter_message(response="utter_order_status", order_number=order.order_number,
                                     items=items_summary(order), status=order.status_label,
                                     detail=status_detail(order))


class _OrderChangeForm(VerifiedFormValidation):
    needs_order = True

    def check_order(self, number: str, dispatcher: CollectingDispatcher,
                    tracker: Tracker) -> dict[str, Any]:
        customer_id = common.customer_id_of(tracker)
        order = common.crm().get_order(customer_id, number) if customer_id is not None else None
        if order is None or self.allowed(order):
            return {}
        if order.status == "cancelled" and self.form == "cancel_order_form":
            dispatcher.utter_message(response="utter_order_already_cancelled", order_number=number)
        else:
            dispatcher.utter_message(response=self.blocked_response, order_number=number,
                                     status=order.status_label, hint=_blocked_hint(order.status))
        return {"flow_blocked": True, "requested_slot": None}

    blocked_response = ""

    @staticmethod
    def allowed(order: OrderView) -> bool:
        raise NotImplementedError


class ValidateCancelOrderForm(_OrderChangeForm):
    form = "cancel_order_form"
    flow_slots = ("confirm",)
    blocked_response = "utter_order_not_cancellable"

    @staticmethod
    def allowed(order: OrderView) -> bool:
        return order.can_cancel


def address_in(text: str) -> Optional[str]:
    """A complete new address said in passing ("帮我把地址改成上海市浦东新区世纪大道100号"), or None."""
    lead = common.new_value_after_lead(text)
    candidate = lead if lead is not None else ("" if common.first_order_number(text) else text)
    try:
        return validation.address(candidate)
    except errors.InvalidInput:
        return None


class ValidateChangeAddressForm(_OrderChangeForm):
    form = "change_address_form"
    flow_slots = ("new_address", "confirm")
    blocked_response = "utter_address_not_changeable"

    @staticmethod
    def allowed(order: OrderView) -> bool:
        return order.can_change_address

    async def extract_new_address(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> dict[str, Any]:
        """The whole new address when it comes in passing ("…改成上海市浦东新区世纪大道100号").

        The entity extractor's span of it may be partial, or missing; when the
        address itself is asked for, the whole message is the answer (domain.yml).
        """
        return said_in_passing(tracker, "new_address", address_in)

    def validate_new_address(self, value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        # Given before it was asked for, it is acknowledged.  Seen by hand: typed
        # where the order number was asked, it was kept, but the order number was
        # simply asked again and the customer could not tell it had been heard.
        return checked_slot("new_address", validation.address, value, dispatcher, tracker,
                            noted="utter_new_address_noted", noted_as="address")


class ActionCancelOrder(VerifiedFlowAction):
    action_name = "action_cancel_order"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        number = tracker.get_slot("order_number")
        if not number:
            return
        if tracker.get_slot("confirm") is not True:
            dispatcher.utter_message(response="utter_cancel_kept", order_number=number)
            return
        change = common.crm().cancel_order(customer_id, number,
                                           common.idempotency_key(tracker, "cancel_order"))
        if change.outcome == "done":
            dispatcher.utter_message(response="utter_order_cancelled", order_number=number,
                                     amount=f"{change.order.total:.2f}")
        elif change.outcome == "already":
            dispatcher.utter_message(response="utter_order_already_cancelled", order_number=number)
        elif change.outcome == "not_allowed":
            dispatcher.utter_message(response="utter_order_not_cancellable", order_number=number,
                                     status=change.order.status_label,
                                     hint=_blocked_hint(change.order.status))
        else:
            dispatcher.utter_message(response="utter_order_not_found", order_number=number)


class ActionChangeAddress(VerifiedFlowAction):
    action_name = "action_change_address"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  customer_id: int) -> None:
        number = tracker.get_slot("order_number")
        address = tracker.get_slot("new_address")
        if not number:
            return
        if tracker.get_slot("confirm") is not True:
            dispatcher.utter_message(response="utter_address_kept", order_number=number)
            return
        try:
            change = common.crm().change_address(customer_id, number, address,
                                                 common.idempotency_key(tracker, "change_address"))
        except errors.InvalidInput as refusal:
            dispatcher.utter_message(response="utter_invalid_value", message=refusal.message_zh)
            return
        if change.outcome in ("done", "already"):
            dispatcher.utter_message(response="utter_address_changed", order_number=number,
                                     new_address=address)
        elif change.outcome == "not_allowed":
            dispatcher.utter_message(response="utter_address_not_changeable", order_number=number,
                                     status=change.order.status_label,
                                     hint=_blocked_hint(change.order.status))
        else:
            dispatcher.utter_message(response="utter_order_not_found", order_number=number)
