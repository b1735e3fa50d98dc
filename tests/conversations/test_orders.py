"""Order status, cancellation and address changes, in Chinese, over REST."""
from __future__ import annotations

from tests.conftest import Chat


def test_known_customer_is_greeted_by_name_with_open_tickets(zhangwei: Chat) -> None:
    reply = zhangwei.say("你好")
    assert "张伟您好" in reply
    assert "投诉" in reply  # the open complaint from the fixtures is mentioned


def test_latest_order_status_for_bound_customer(zhangwei: Chat) -> None:
    reply = zhangwei.say("我的快递到哪了")
    assert "订单 2601010000" in reply
    assert "当前状态" in reply


def test_shipped_order_shows_carrier_and_tracking(zhangwei: Chat) -> None:
    reply = zhangwei.say("帮我查下订单260101000001到哪了")
    assert "260101000001" in reply
    assert "SF1234567890" in reply


def test_anonymous_customer_verifies_with_order_and_last_four(anonymous: Chat) -> None:
    assert "订单号" in anonymous.say("我的订单怎么还没发货")
    assert "后四位" in anonymous.say("260101000021")
    reply = anonymous.say("1111")
    assert "验证成功" in reply and "王芳" in reply
    assert "260101000021" in reply and "当前状态" in reply
    assert anonymous.slot("verified") is True


def test_wrong_digits_reveal_nothing_and_lock_after_three_tries(anonymous: Chat) -> None:
    anonymous.say("查一下我的订单")
    for attempt in range(3):
        anonymous.say("260101000004")  # 张伟's cancelled order: nobody else logs in with it
        reply = anonymous.say("9999")
        assert "张伟" not in reply and "当前状态" not in reply
    assert "次数过多" in reply
    assert anonymous.slot("verified") is False
    # After the lock a new attempt in the same session is refused at once.
    reply = anonymous.say("查订单260101000021")
    assert "王芳" not in reply and "张伟" not in reply and "次数过多" in reply


def test_someone_elses_order_number_is_not_found(zhangwei: Chat) -> None:
    reply = zhangwei.say("订单260101000011到哪了")  # 李娜's order
    assert "没有找到订单 260101000011" in reply
    assert "李娜" not in reply and "当前状态" not in reply


def test_unknown_order_number(zhangwei: Chat) -> None:
    reply = zhangwei.say("帮我查一下订单999999999999")
    assert "没有找到订单 999999999999" in reply


def test_cancel_paid_order_after_confirmation(zhangwei: Chat, stack_crm) -> None:
    assert "确认要取消订单 260101000002" in zhangwei.say("我要取消订单260101000002")
    assert "已取消" in zhangwei.say("确认")
    assert stack_crm.get_order(1, "260101000002").status == "cancelled"


def test_shipped_order_cannot_be_cancelled(zhangwei: Chat, stack_crm) -> None:
    reply = zhangwei.say("订单260101000001不要了帮我取消")
    assert "无法取消" in reply and "退货" in reply
    assert stack_crm.get_order(1, "260101000001").status == "shipped"


def test_customer_changes_mind_about_cancelling(anonymous: Chat, stack_crm) -> None:
    anonymous.say("我想取消订单")
    anonymous.say("260101000021")
    assert "确认要取消" in anonymous.say("尾号1111")
    assert "没有取消" in anonymous.say("不了，先不取消")
    assert stack_crm.get_order(3, "260101000021").status == "paid"


def test_change_address_before_shipment(anonymous: Chat, stack_crm) -> None:
    anonymous.say("收货地址写错了，能改一下吗")
    anonymous.say("260101000021")
    assert "新的收货地址" in anonymous.say("1111")
    assert "确认把订单 260101000021" in anonymous.say("浙江省杭州市西湖区文三路100号 王芳 13700001111")
    assert "已将订单 260101000021 的收货地址修改为" in anonymous.say("对的")


def test_an_address_given_before_it_is_asked_for_is_kept(anonymous: Chat, stack_crm) -> None:
    """Seen by hand: the address typed where the order number was asked was
    dropped, and the order number asked again."""
    anonymous.say("能不能改一下收货地址")
    reply = anonymous.say("改成浙江省杭州市西湖区文三路100号")
    assert "新地址记下了" in reply and "订单号" in reply, reply
    anonymous.say("260101000021")
    reply = anonymous.say("1111")
    assert "确认把订单 260101000021" in reply and "文三路100号" in reply, reply  # not asked again
    assert "已将订单 260101000021 的收货地址修改为" in anonymous.say("对的")
    from sqlalchemy import select

    from crm_adapter.models import Order
    with stack_crm.engine.connect() as conn:
        stored = conn.execute(select(Order.address).where(Order.order_number == "260101000021")).scalar_one()
    assert stored.startswith("浙江省杭州市西湖区文三路100号"), stored


def test_stop_a_form_midway(anonymous: Chat) -> None:
    anonymous.say("我要改地址")
    reply = anonymous.say("算了，不改了")
    assert "已为您取消当前操作" in reply


def test_the_order_just_discussed_is_offered_to_the_next_request(lina: Chat) -> None:
    """Seen by hand: told 260101000012 had shipped, 「那我要退货」 was asked the order number from scratch."""
    lina.say("我想把收货地址改一下")
    assert "无法修改" in lina.say("260101000012")
    reply = lina.say("那我要退货")
    assert "是刚才的订单 260101000012" in reply, reply
    assert "运输途中" in lina.say("是")  # that order: it cannot be returned before it arrives


def test_another_order_than_the_one_offered(lina: Chat) -> None:
    lina.say("我想把收货地址改一下")
    lina.say("260101000012")
    assert "是刚才的订单" in lina.say("我要退货")
    reply = lina.say("不是")
    assert "请告诉我您的订单号" in reply and "取消" not in reply, reply
    assert "退货原因" in lina.say("260101000011")
