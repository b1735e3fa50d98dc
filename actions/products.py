"""Product questions answered from the CRM catalogue, and recommendations
from the customer's own purchase history."""
from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from crm_adapter.catalogue import CATEGORIES, canonical_category
from crm_adapter.views import ProductView


def product_line(product: ProductView) -> str:
    warranty = f"，保修{product.warranty_months}个月" if product.warranty_months else ""
    return f"【{product.name}】{product.price:.0f}元{warranty}。{product.description}"


def category_of(tracker: Tracker) -> str | None:
    return canonical_category(common.entity_value(tracker, "category"))


class ActionAnswerProduct(Action):
    def name(self) -> str:
        return "action_answer_product"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        text = (tracker.latest_message or {}).get("text") or ""
        mentioned = common.entity_value(tracker, "product")
        products = common.crm().find_products(text=mentioned or text, limit=3)
        if not products:
            category = category_of(tracker)
            if category:
                products = common.crm().find_products(category=category, limit=3)
        if not products:
            dispatcher.utter_message(response="utter_product_unknown",
                                     categories="、".join(CATEGORIES))
        else:
            dispatcher.utter_message(response="utter_product_info",
                                     lines="\n".join(product_line(p) for p in products))
        return [SlotSet("product", None), SlotSet("category", None)]


class ActionRecommend(Action):
    def name(self) -> str:
        return "action_recommend"

    @common.apologise_when_crm_down
    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        customer_id = common.customer_id_of(tracker)
        category = category_of(tracker)
        # Seen by hand: 「推荐个耳机」 was answered with a filter, milk and tea
        # from the customer's history; the kind of product asked for comes first.
        named = [] if category else common.crm().find_products(
            text=common.entity_value(tracker, "product") or (tracker.latest_message or {}).get("text"), limit=3)
        products = named or common.crm().recommend(customer_id, limit=3, category=category)
        if not products:
            dispatcher.utter_message(response="utter_product_unknown",
                                     categories="、".join(CATEGORIES))
            return []
        if named:
            intro = "您问的这类商品，我们有："
        else:
            intro = ("根据您的购买记录，为您推荐：" if customer_id is not None
                     else "这几款最近很受欢迎：")
        dispatcher.utter_message(response="utter_recommendations",
                                 lines=intro + "\n" + "\n".join(product_line(p) for p in products))
        return [SlotSet("category", None)]
