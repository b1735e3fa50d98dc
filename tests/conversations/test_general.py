"""FAQ, products, recommendations, small talk and bad input, over REST."""
from __future__ import annotations

import pytest

from tests.conftest import Chat


def test_faq_shipping_fee(anonymous: Chat) -> None:
    assert "99" in anonymous.say("买多少钱包邮啊")


def test_faq_business_hours(anonymous: Chat) -> None:
    assert "9:00" in anonymous.say("你们人工客服几点上班")


def test_product_question_answered_from_catalogue(anonymous: Chat) -> None:
    reply = anonymous.say("星辰X5手机多少钱")
    assert "星辰X5手机" in reply and "2999" in reply


def test_recommendation_from_history(zhangwei: Chat) -> None:
    assert "根据您的购买记录" in zhangwei.say("有什么好东西推荐给我吗")


def test_recommendation_in_a_category_the_customer_already_owns(zhangwei: Chat) -> None:
    # Seen by hand: 张伟 owns every digital product, and "推荐个手机" was answered
    # 「没有找到您说的商品」 with the category list, phones included.
    reply = zhangwei.say("推荐个手机")
    digital = ("星辰X5手机", "星辰Pad平板", "声浪降噪耳机", "极速充电宝", "智能手环7")
    assert "没有找到" not in reply and sum(name in reply for name in digital) == 3, reply


@pytest.mark.parametrize("asked,product", [("推荐个耳机", "声浪降噪耳机"), ("给我推荐一款平板吧", "星辰Pad平板")])
def test_a_recommendation_for_a_kind_of_product_offers_that_kind(zhangwei: Chat, asked: str, product: str) -> None:
    # Seen by hand: 「推荐个耳机」 was answered with a filter, milk and tea.
    reply = zhangwei.say(asked)
    assert product in reply and "牛奶" not in reply, reply


def test_recommendation_for_anonymous(anonymous: Chat) -> None:
    assert "受欢迎" in anonymous.say("有啥推荐的吗")


def test_out_of_scope_is_declined_politely(anonymous: Chat) -> None:
    reply = anonymous.say("今天北京天气怎么样")
    assert "帮不上忙" in reply and "订单" in reply


def test_bot_challenge(anonymous: Chat) -> None:
    assert "机器人" in anonymous.say("你是真人还是机器人")


def test_traditional_characters_are_understood(anonymous: Chat) -> None:
    assert "訂單號" not in (reply := anonymous.say("我的訂單到哪裡了"))
    assert "订单号" in reply


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "😀😀😀🙏",
    "啊" * 5000,
    "<script>alert('x')</script>",
    "'; DROP TABLE customers; --",
    "订单号 260101000001' OR '1'='1",
    "\u200b\u200b\u200b",
])
def test_bad_input_gets_a_reply_and_no_crash(anonymous: Chat, text: str) -> None:
    reply = anonymous.say(text)
    assert reply.strip(), f"no reply to {text[:20]!r}"
    assert "<script>" not in reply
    # The conversation still works afterwards.
    assert "99" in anonymous.say("多少钱包邮")
