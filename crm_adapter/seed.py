"""Demo data for the embedded CRM: ``python -m crm_adapter.seed``.

    python -m crm_adapter.seed [--customers 3000] [--seed 42] [--if-empty] [--reset] [--url URL]

``--customers`` counts the generated customers, in addition to the three
fixed demo customers below. Generation is deterministic: one
``random.Random(seed)`` drives every choice, and all times are offsets from
a reference "now" (the current hour, or ``now=`` when called from code), so
the same seed at the same hour gives the same database. Rows are written
with bulk inserts in one transaction (3,000 customers / ~12,000 orders take
a few seconds on SQLite).

The generated population follows the long tail: about 75 % low-value
customers with a handful of orders, 20 % potential customers, 5 % core
customers with many; consumables are re-bought on their repurchase cycle,
accessories are bought with their main product (净化器 + 滤芯), some
customers have churned, and there are coupons, consents, channel
identities, open and closed complaints, returns and satisfaction ratings.

Fixed demo customers (created first, stable ids; tests and docs rely on them)
-----------------------------------------------------------------------------
Times are relative to the seed's "now".

Customer 1 — 张伟, phone 13800138000, core tier, 金卡, 12,680 points
(2,300 expiring at the end of this year), city 上海, address
上海市浦东新区张江路100号3栋1202室; channel identities ("rest", "demo-zhangwei")
and ("web", "demo-zhangwei") -- the latter is the shop uid the demo website
signs into its chat token (bot.web.server).

=============  ==========  ================================================
order          status      notes
=============  ==========  ================================================
260101000001   shipped     星辰X5手机; 顺丰 SF1234567890, in transit at
                           上海转运中心
260101000002   paid        每日坚果礼盒×2 + 云南小粒咖啡豆; not shipped:
                           cancellable, address changeable
260101000003   delivered   3 days ago; 声浪降噪耳机 + 极速充电宝; returnable
260101000004   cancelled   小暖电暖器
260101000005   delivered   40 days ago; 清风空气净化器; past the return window
260101000006   returned    缓震跑步鞋, delivered 90 days ago; return
                           ``refunded``
260101000007   delivered   8 days ago; 轻薄羽绒服; return ``approved``, refund
                           pending (so it is not returnable again)
260101000008   delivered   200 days ago; 轻语扫地机器人
260101000009   delivered   400 days ago; 星辰Pad平板 + 智能手环7
260101000010   delivered   35 days ago; 云南小粒咖啡豆×2 (a consumable)
=============  ==========  ================================================

Plus one open complaint (quality, about 260101000003, severity high because
he is a core customer), two coupons (满300减30 expiring in 5 days;
金卡专享满1000减100 in 30 days), and a granted WeChat marketing consent.

Customer 2 — 李娜, phone 13912345678, potential tier, 银卡, 2,860 points, city
杭州; channel identity ("rest", "demo-lina"). Orders 260101000011 delivered
(10 days ago, 纸尿裤 + 湿巾), 260101000012 shipped (中通, 奶粉), and two older
delivered orders 260101000013 and 260101000014.

Customer 3 — 王芳, phone 13700001111, low tier, 普通会员, city 成都; NO channel
identity (tests log in as her by verifying order 260101000021 with last
four digits 1111). Order 260101000021 paid (抽纸 + 洗衣凝珠).

Generated customers have ids from 4, order numbers whose last six digits
start at 100000 (never colliding with the 2601010000xx demo numbers) and
phone numbers distinct from the demo ones.
"""
from __future__ import annotations

import argparse
import random
import string
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional, Sequence

from sqlalchemy import text

from . import migrate, policy
from .catalogue import PRODUCTS, CatalogueItem, load_regions
from .masking import guard_logger
from .models import (
    ChannelIdentity,
    Complaint,
    Consent,
    Coupon,
    CsatRating,
    Customer,
    Escalation,
    NumberSequence,
    Order,
    OrderItem,
    Product,
    ReturnRequest,
)
from .service import CRM

log = guard_logger(__name__)

DEMO_ZHANG_WEI = 1
DEMO_LI_NA = 2
DEMO_WANG_FANG = 3
# The shop user id of 张伟 on the demo website: ChannelIdentity ("web", DEMO_WEB_UID).
DEMO_WEB_UID = "demo-zhangwei"

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
    "于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹"
)
_GIVEN_MALE = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳建国峰"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英华燕梅琳莉红丹萍婷雪颖慧琴倩茜悦晶佳怡欣蕾璐"
_PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "155", "156", "157", "158", "159", "166", "176", "177", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "198", "199",
)
_EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com")
_EMAIL_WORDS = ("sunny", "lucky", "panda", "tiger", "lemon", "cloud", "river", "happy", "star", "maple")
_DISTRICTS = {
    "北京": ("朝阳区", "海淀区", "东城区", "西城区", "丰台区"),
    "上海": ("浦东新区", "徐汇区", "静安区", "闵行区", "杨浦区"),
    "广州": ("天河区", "越秀区", "海珠区", "番禺区"),
    "深圳": ("南山区", "福田区", "宝安区", "龙岗区"),
    "杭州": ("西湖区", "上城区", "滨江区", "余杭区"),
    "成都": ("武侯区", "锦江区", "青羊区", "成华区"),
    "南京": ("鼓楼区", "玄武区", "建邺区", "江宁区"),
    "武汉": ("江汉区", "武昌区", "洪山区", "汉阳区"),
}
_GENERIC_DISTRICTS = ("城东区", "城西区", "高新区", "经开区", "新城区")
_STREETS = ("人民路", "解放路", "中山路", "建设路", "和平路", "长江路", "新华路", "文化路", "青年路", "学府路")
_BIG_CITIES = ("北京", "上海", "广州", "深圳", "杭州", "成都", "南京", "武汉")
_NOT_CITIES = ("内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门", "台北")
# Accessories bought with their main product, for co-purchase signals.
_BUNDLES = {
    "SKU2001": "SKU2002",
    "SKU3005": "SKU3006",
    "SKU1001": "SKU1004",
    "SKU1002": "SKU1003",
    "SKU8001": "SKU8002",
    "SKU5001": "SKU5003",
    "SKU4001": "SKU4002",
}
_COUPON_TEMPLATES = (
    ("满99减10", 10.0, 99.0),
    ("满199减20", 20.0, 199.0),
    ("满300减30", 30.0, 300.0),
    ("满500减50", 50.0, 500.0),
    ("生日礼券满100减20", 20.0, 100.0),
    ("会员专享满1000减100", 100.0, 1000.0),
)
_COMPLAINTS = {
    "logistics": ("快递好几天了还没到，物流信息一直不更新", "快递员没打电话就把包裹放驿站了", "外包装破损，东西被压坏了"),
    "quality": ("{p}用了两天就坏了", "{p}收到的时候有划痕", "{p}和页面描述的不一样", "{p}充电的时候冒烟了，差点起火"),
    "service": ("客服回复太慢了，等了半天没人理", "客服态度不好，问题没解决就结束对话了"),
    "price": ("刚买完就降价了，想申请价保", "优惠券用不了，结算价格不对"),
    "after_sales": ("退货申请提交好几天了还没审核", "退款一直没到账"),
    "other": ("发票一直没收到", "会员积分没有到账"),
}
_COMPLAINT_WEIGHTS = {"logistics": 30, "quality": 25, "service": 12, "price": 10, "after_sales": 15, "other": 8}


@dataclass(frozen=True)
class SeedReport:
    customers: int
    orders: int
    order_items: int
    complaints: int
    seconds: float


def _hour(now: Optional[datetime]) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    return policy.utc_naive(now)


class _Builder:
    """Accumulates rows with explicit ids, for bulk inserts in dependency order."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.today = policy.china_date(now)
        self.products = {item.sku: (index + 1, item) for index, item in enumerate(PRODUCTS)}
        self.rows: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.order_seq = 100000
        self.daily_numbers: dict[str, int] = defaultdict(int)
        self.used_phones: set[str] = set()

    def days_ago(self, days: float, hour_jitter: bool = False) -> datetime:
        moment = self.now - timedelta(days=days)
        if hour_jitter:
            moment -= timedelta(minutes=self.rng.randint(0, 600))
        return moment

    def number(self, prefix: str, when: datetime) -> str:
        stem = f"{prefix}{policy.china_date(when):%Y%m%d}"
        self.daily_numbers[stem] += 1
        return f"{stem}{self.daily_numbers[stem]:04d}"

    def add(self, model: Any, **row: Any) -> int:
        rows = self.rows[model]
        row.setdefault("id", len(rows) + 1)
        rows.append(row)
        return int(row["id"])

    def customer(self, **row: Any) -> int:
        row.setdefault("timezone", "Asia/Shanghai")
        row.setdefault("deleted", False)
        row.setdefault("points_expiring", 0)
        if row.get("phone"):
            self.used_phones.add(row["phone"])
        return self.add(Customer, **row)

    def order(
        self,
        customer_id: int,
        number: str,
        status: str,
        lines: Sequence[tuple[str, int]],
        created_at: datetime,
        address: str,
        **times: Any,
    ) -> tuple[int, float]:
        total = round(sum(self.products[sku][1].price * qty for sku, qty in lines), 2)
        order_id = self.add(
            Order,
            order_number=number,
            customer_id=customer_id,
            status=status,
            total=total,
            address=address,
            created_at=created_at,
            paid_at=times.get("paid_at"),
            shipped_at=times.get("shipped_at"),
            delivered_at=times.get("delivered_at"),
            cancelled_at=times.get("cancelled_at"),
            carrier=times.get("carrier"),
            tracking_number=times.get("tracking_number"),
            logistics_note=times.get("logistics_note"),
            updated_at=None,
        )
        for sku, qty in lines:
            product_id, item = self.products[sku]
            self.add(
                OrderItem,
                order_id=order_id,
                product_id=product_id,
                sku=sku,
                name=item.name,
                quantity=qty,
                unit_price=item.price,
            )
        return order_id, total


def _demo(b: _Builder) -> None:
    """The three fixed customers documented in the module docstring."""
    zhang_address = "上海市浦东新区张江路100号3栋1202室"
    b.customer(
        id=DEMO_ZHANG_WEI, name="张伟", phone="13800138000", email="zhangwei@example.com",
        birthday=date(1985, 6, 18), gender="male", city="上海", default_address=zhang_address,
        member_level="金卡", points=12680, points_expiring=2300,
        points_expire_at=date(b.today.year, 12, 31), tier="core", lifecycle_stage="loyalty",
        total_spent=0.0, created_at=b.days_ago(1100),
    )
    b.add(ChannelIdentity, channel="rest", external_id="demo-zhangwei", customer_id=DEMO_ZHANG_WEI,
          verified_at=b.days_ago(30), created_at=b.days_ago(30))
    b.add(ChannelIdentity, channel="web", external_id=DEMO_WEB_UID, customer_id=DEMO_ZHANG_WEI,
          verified_at=b.days_ago(30), created_at=b.days_ago(30))

    def delivered(days: float) -> dict[str, Any]:
        return dict(paid_at=b.days_ago(days + 3), shipped_at=b.days_ago(days + 2),
                    delivered_at=b.days_ago(days), carrier="中通",
                    tracking_number=f"7{int(days):011d}", logistics_note="已签收，签收人：本人")

    z = DEMO_ZHANG_WEI
    b.order(z, "260101000001", "shipped", [("SKU1001", 1)], b.days_ago(2), zhang_address,
            paid_at=b.days_ago(2), shipped_at=b.days_ago(1), carrier="顺丰",
            tracking_number="SF1234567890", logistics_note="运输中，已到达【上海转运中心】")
    b.order(z, "260101000002", "paid", [("SKU4002", 2), ("SKU4001", 1)], b.days_ago(0.125),
            zhang_address, paid_at=b.days_ago(0.12))
    headphones_order, _ = b.order(z, "260101000003", "delivered", [("SKU1003", 1), ("SKU1004", 1)],
                                  b.days_ago(6), zhang_address, **delivered(3))
    b.order(z, "260101000004", "cancelled", [("SKU2003", 1)], b.days_ago(20), zhang_address,
            cancelled_at=b.days_ago(19.9))
    b.order(z, "260101000005", "delivered", [("SKU2001", 1)], b.days_ago(43), zhang_address,
            **delivered(40))
    shoes_order, shoes_total = b.order(z, "260101000006", "returned", [("SKU6002", 1)],
                                       b.days_ago(93), zhang_address, **delivered(90))
    jacket_order, _ = b.order(z, "260101000007", "delivered", [("SKU6001", 1)], b.days_ago(11),
                              zhang_address, **delivered(8))
    b.order(z, "260101000008", "delivered", [("SKU2004", 1)], b.days_ago(203), zhang_address,
            **delivered(200))
    b.order(z, "260101000009", "delivered", [("SKU1002", 1), ("SKU1005", 1)], b.days_ago(403),
            zhang_address, **delivered(400))
    b.order(z, "260101000010", "delivered", [("SKU4001", 2)], b.days_ago(38), zhang_address,
            **delivered(35))
    refunded_at = b.days_ago(80)
    b.add(ReturnRequest, return_number=b.number("R", b.days_ago(88)), order_id=shoes_order,
          customer_id=z, sku=None, reason="尺码偏小", status="refunded", refund_amount=shoes_total,
          refund_eta=policy.china_date(refunded_at), created_at=b.days_ago(88), updated_at=refunded_at)
    b.add(ReturnRequest, return_number=b.number("R", b.days_ago(2)), order_id=jacket_order,
          customer_id=z, sku="SKU6001", reason="颜色和图片不一样", status="approved",
          refund_amount=b.products["SKU6001"][1].price, refund_eta=b.today + timedelta(days=2),
          created_at=b.days_ago(2), updated_at=b.days_ago(1))
    complaint_at = b.days_ago(2 / 24)
    description = "降噪耳机左耳有时候没有声音，重新配对也不行"
    severity = policy.complaint_severity("quality", description, "core")
    b.add(Complaint, ticket_number=b.number("TS", complaint_at), customer_id=z,
          order_id=headphones_order, reported_order_number="260101000003", category="quality",
          description=description, severity=severity, status="open", channel="rest",
          sender_id="demo-zhangwei", sla_due_at=policy.sla_due(severity, complaint_at),
          created_at=complaint_at, resolved_at=None)
    b.add(Coupon, code="CPDEMO0001", customer_id=z, title="满300减30", amount=30.0, min_spend=300.0,
          expires_at=b.days_ago(-5), used_at=None, created_at=b.days_ago(25))
    b.add(Coupon, code="CPDEMO0002", customer_id=z, title="金卡专享满1000减100", amount=100.0,
          min_spend=1000.0, expires_at=b.days_ago(-30), used_at=None, created_at=b.days_ago(10))
    b.add(Consent, recorded_by="customer", customer_id=z, channel="wechat", purpose="marketing", granted=True,
          source="demo", created_at=b.days_ago(300))

    li_address = "浙江省杭州市西湖区文三路90号5幢302室"
    b.customer(
        id=DEMO_LI_NA, name="李娜", phone="13912345678", email="li.na@example.com",
        birthday=date(1992, 3, 8), gender="female", city="杭州", default_address=li_address,
        member_level="银卡", points=2860, points_expiring=0, points_expire_at=None,
        tier="potential", lifecycle_stage="growth", total_spent=0.0, created_at=b.days_ago(400),
    )
    b.add(ChannelIdentity, channel="rest", external_id="demo-lina", customer_id=DEMO_LI_NA,
          verified_at=b.days_ago(5), created_at=b.days_ago(5))
    b.order(DEMO_LI_NA, "260101000011", "delivered", [("SKU5001", 2), ("SKU5003", 1)],
            b.days_ago(13), li_address, **delivered(10))
    b.order(DEMO_LI_NA, "260101000012", "shipped", [("SKU5002", 2)], b.days_ago(2), li_address,
            paid_at=b.days_ago(2), shipped_at=b.days_ago(1), carrier="中通",
            tracking_number="73100000000012", logistics_note="运输中，已到达【杭州转运中心】")
    b.order(DEMO_LI_NA, "260101000013", "delivered", [("SKU1002", 1)], b.days_ago(63), li_address,
            **delivered(60))
    b.order(DEMO_LI_NA, "260101000014", "delivered", [("SKU5001", 2)], b.days_ago(33), li_address,
            **delivered(30))
    b.add(Consent, recorded_by="customer", customer_id=DEMO_LI_NA, channel="sms", purpose="marketing", granted=True,
          source="demo", created_at=b.days_ago(390))

    wang_address = "四川省成都市武侯区人民南路四段12号"
    b.customer(
        id=DEMO_WANG_FANG, name="王芳", phone="13700001111", email=None,
        birthday=date(1998, 11, 20), gender="female", city="成都", default_address=wang_address,
        member_level="普通会员", points=108, points_expiring=0, points_expire_at=None,
        tier="low", lifecycle_stage="acquisition", total_spent=0.0, created_at=b.days_ago(1),
    )
    b.order(DEMO_WANG_FANG, "260101000021", "paid", [("SKU7002", 1), ("SKU7003", 1)],
            b.days_ago(2 / 24), wang_address, paid_at=b.days_ago(1.9 / 24))


def _cities() -> list[str]:
    cities = []
    for entry in load_regions():
        if entry.endswith("省") or entry in _NOT_CITIES or entry.endswith("市"):
            continue
        cities.append(entry)
    return cities


class _Population:
    """Generated customers and their histories."""

    def __init__(self, b: _Builder) -> None:
        self.b = b
        self.rng = b.rng
        self.cities = _cities()
        self.city_weights = [8 if c in _BIG_CITIES else 1 for c in self.cities]
        self.consumables = [item for item in PRODUCTS if item.repurchase_days]
        self.by_category: dict[str, list[CatalogueItem]] = defaultdict(list)
        for item in PRODUCTS:
            self.by_category[item.category].append(item)
        self.categories = sorted(self.by_category)

    def phone(self) -> str:
        while True:
            candidate = self.rng.choice(_PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if candidate not in self.b.used_phones:
                self.b.used_phones.add(candidate)
                return candidate

    def address(self, city: str) -> str:
        rng = self.rng
        district = rng.choice(_DISTRICTS.get(city, _GENERIC_DISTRICTS))
        return (f"{city}市{district}{rng.choice(_STREETS)}{rng.randint(1, 999)}号"
                f"{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元{rng.randint(1, 30)}{rng.randint(1, 4):02d}室")

    def order_number(self, created_at: datetime) -> str:
        self.b.order_seq += 1
        return f"{policy.china_date(created_at):%y%m%d}{self.b.order_seq:06d}"

    def lines(self, favourites: Sequence[str]) -> list[tuple[str, int]]:
        rng = self.rng
        count = rng.choices((1, 2, 3), weights=(60, 28, 12))[0]
        chosen: dict[str, int] = {}
        for _ in range(count):
            category = rng.choice(favourites) if rng.random() < 0.7 else rng.choice(self.categories)
            item = rng.choice(self.by_category[category])
            chosen[item.sku] = rng.randint(1, 3) if item.repurchase_days else 1
            partner = _BUNDLES.get(item.sku)
            if partner and rng.random() < 0.35:
                chosen[partner] = 1
        return list(chosen.items())

    def status_and_times(self, created_at: datetime, city: str) -> tuple[str, dict[str, Any]]:
        rng, now = self.rng, self.b.now
        age_days = (now - created_at).total_seconds() / 86400
        paid = min(created_at + timedelta(minutes=rng.randint(1, 30)), now)
        if rng.random() < 0.04:
            return "cancelled", {"cancelled_at": min(created_at + timedelta(hours=rng.randint(1, 20)), now)}
        if age_days < 1:
            if rng.random() < 0.25:
                return "pending_payment", {}
            return "paid", {"paid_at": paid}
        shipped = paid + timedelta(hours=rng.randint(4, 30))
        carrier = "顺丰" if rng.random() < 0.4 else "中通"
        tracking = f"SF{rng.randrange(10**10):010d}" if carrier == "顺丰" else f"7{rng.randrange(10**13):013d}"
        in_transit = {"paid_at": paid, "shipped_at": shipped, "carrier": carrier, "tracking_number": tracking,
                      "logistics_note": f"运输中，已到达【{city}转运中心】"}
        if age_days < 3 or (age_days < 6 and rng.random() < 0.4) or shipped >= now:
            return ("shipped", in_transit) if shipped < now else ("paid", {"paid_at": paid})
        delivered = min(shipped + timedelta(hours=rng.randint(20, 96)), now - timedelta(hours=1))
        times = dict(in_transit, delivered_at=delivered, logistics_note="已签收")
        if age_days > 6 and rng.random() < 0.025:
            return "returned", times
        return "delivered", times

    def order_times(
        self, count: int, start: datetime, end: datetime, active: bool
    ) -> tuple[list[datetime], Optional[str], set[datetime]]:
        """Order dates, plus the consumable re-bought on its cycle and the dates
        of those repurchases (part of the orders, for customers with several)."""
        rng = self.rng
        times: list[datetime] = []
        chain_sku: Optional[str] = None
        if count >= 3 and rng.random() < 0.6:
            item = rng.choice(self.consumables)
            assert item.repurchase_days
            chain_sku = item.sku
            moment = end - timedelta(days=rng.uniform(0, item.repurchase_days))
            while moment > start and len(times) < count // 2:
                times.append(moment)
                moment -= timedelta(days=item.repurchase_days * rng.uniform(0.8, 1.3))
        chain_times = set(times)
        span = (end - start).total_seconds()
        while len(times) < count:
            times.append(start + timedelta(seconds=rng.uniform(0, span)))
        times.sort()
        if times and active and end - times[-1] > timedelta(days=120):
            # An active customer has bought within the last few months.
            times[-1] = max(start, end - timedelta(days=rng.uniform(0, 120)))
            times.sort()
        return times, chain_sku, chain_times

    def customer(self) -> None:
        b, rng, now = self.b, self.rng, self.b.now
        tier = rng.choices(("core", "potential", "low"), weights=(5, 20, 75))[0]
        gender = rng.choice(("male", "female"))
        given = _GIVEN_MALE if gender == "male" else _GIVEN_FEMALE
        name = rng.choice(_SURNAMES) + "".join(rng.choice(given) for _ in range(rng.choice((1, 2, 2))))
        city = rng.choices(self.cities, weights=self.city_weights)[0]
        address = self.address(city)
        age_days = rng.randint(30, 1100) if tier == "low" else rng.randint(200, 1400)
        created_at = b.days_ago(age_days, hour_jitter=True)
        email = None
        if rng.random() < 0.5:
            email = f"{rng.choice(_EMAIL_WORDS)}{rng.randint(10, 99999)}@{rng.choice(_EMAIL_DOMAINS)}"
        if tier == "core":
            order_count = rng.randint(12, 30)
        elif tier == "potential":
            order_count = rng.randint(4, 10)
        else:
            order_count = rng.choices(range(6), weights=(12, 35, 25, 15, 8, 5))[0]
        churned = order_count > 0 and rng.random() < {"core": 0.03, "potential": 0.15, "low": 0.35}[tier]
        end = now - timedelta(days=rng.randint(200, 500)) if churned else now - timedelta(minutes=10)
        if end <= created_at:
            end = created_at + timedelta(days=1)
            churned = False
        favourites = rng.sample(self.categories, 2)
        customer_id = b.customer(
            name=name, phone=self.phone(), email=email,
            birthday=date(b.today.year - rng.randint(18, 65), rng.randint(1, 12), rng.randint(1, 28)),
            gender=gender, city=city, default_address=address, member_level="普通会员", points=0,
            points_expire_at=None, tier=tier, lifecycle_stage="potential", total_spent=0.0,
            created_at=created_at,
        )
        spent, last_year_spent, last_order_at = 0.0, 0.0, None
        delivered_recent: list[tuple[int, float, datetime]] = []
        times, chain_sku, chain_times = self.order_times(order_count, created_at, end, not churned)
        for created in times:
            lines = self.lines(favourites)
            if created in chain_times and chain_sku:
                lines = [(chain_sku, rng.randint(1, 2))] + [line for line in lines if line[0] != chain_sku][:1]
            status, times = self.status_and_times(created, city)
            order_id, total = b.order(customer_id, self.order_number(created), status, lines, created, address,
                                      **times)
            if status in policy.SPENDING_STATUSES:
                spent += total
                if policy.china_date(created).year == b.today.year - 1:
                    last_year_spent += total
            if status == "returned":
                when = times["delivered_at"] + timedelta(days=rng.randint(1, 6))
                b.add(ReturnRequest, return_number=b.number("R", when), order_id=order_id,
                      customer_id=customer_id, sku=None, reason=rng.choice(("尺码不合适", "不喜欢", "质量问题")),
                      status="refunded", refund_amount=total, refund_eta=policy.china_date(when) + timedelta(days=5),
                      created_at=when, updated_at=when + timedelta(days=4))
            elif status == "delivered" and now - times["delivered_at"] < timedelta(days=12):
                delivered_recent.append((order_id, total, times["delivered_at"]))
            last_order_at = created
        for order_id, total, delivered_at in delivered_recent:
            if rng.random() < 0.08:
                when = min(delivered_at + timedelta(days=rng.uniform(0.5, 3)), now - timedelta(hours=1))
                status = rng.choice(("requested", "approved", "received"))
                b.add(ReturnRequest, return_number=b.number("R", when), order_id=order_id,
                      customer_id=customer_id, sku=None, reason=rng.choice(("尺码不合适", "颜色和图片不一样", "七天无理由")),
                      status=status, refund_amount=total,
                      refund_eta=None if status == "requested" else b.today + timedelta(days=rng.randint(1, 5)),
                      created_at=when, updated_at=when)

        spent = round(spent, 2)
        redeemed = rng.uniform(0, 0.4) if spent else 0.0
        points = int(spent * (1 - redeemed))
        expiring = min(points, int(last_year_spent * (1 - redeemed)))
        if tier == "low" and spent >= 4000:
            tier = "potential"  # the tier follows what the customer actually spent
        row = b.rows[Customer][-1]
        row.update(
            tier=tier,
            total_spent=spent,
            member_level=policy.level_for_spend(spent),
            points=points,
            points_expiring=expiring,
            points_expire_at=date(b.today.year, 12, 31) if expiring else None,
            lifecycle_stage=self.stage(tier, order_count, last_order_at),
        )
        self.extras(customer_id, tier, created_at, churned)

    def stage(self, tier: str, order_count: int, last_order_at: Optional[datetime]) -> str:
        if order_count == 0 or last_order_at is None:
            return "potential"
        if self.b.now - last_order_at > timedelta(days=180):
            return "churn"
        if order_count == 1:
            return "acquisition"
        return "loyalty" if tier == "core" and order_count >= 8 else "growth"

    def extras(self, customer_id: int, tier: str, created_at: datetime, churned: bool) -> None:
        """Identities, consents, coupons, complaints and ratings for one customer."""
        b, rng = self.b, self.rng
        roll = rng.random()
        if roll < 0.45:
            openid = "o" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(27))
            b.add(ChannelIdentity, channel="wechat", external_id=openid, customer_id=customer_id,
                  verified_at=created_at, created_at=created_at)
        elif roll < 0.6:
            b.add(ChannelIdentity, channel="web", external_id=f"web-{rng.randrange(16**12):012x}",
                  customer_id=customer_id, verified_at=created_at, created_at=created_at)
        b.add(Consent, recorded_by="customer", customer_id=customer_id, channel="all", purpose="service", granted=True,
              source="registration", created_at=created_at)
        if rng.random() < 0.7:
            for channel in rng.sample(("sms", "wechat", "email"), rng.randint(1, 3)):
                granted = rng.random() < 0.65
                b.add(Consent, recorded_by="customer", customer_id=customer_id, channel=channel, purpose="marketing",
                      granted=granted, source="registration", created_at=created_at)
                if granted and rng.random() < 0.08:
                    b.add(Consent, recorded_by="customer", customer_id=customer_id, channel=channel, purpose="marketing",
                          granted=False, source="unsubscribe_link",
                          created_at=created_at + (b.now - created_at) / 2)
        if rng.random() < (0.6 if tier == "core" else 0.3):
            for _ in range(rng.randint(1, 2)):
                title, amount, min_spend = rng.choice(_COUPON_TEMPLATES)
                issued = b.days_ago(rng.randint(1, 60))
                b.add(Coupon, code=f"CP{len(b.rows[Coupon]) + 1:08d}", customer_id=customer_id, title=title,
                      amount=amount, min_spend=min_spend, expires_at=issued + timedelta(days=rng.randint(7, 90)),
                      used_at=issued + timedelta(days=1) if rng.random() < 0.2 else None, created_at=issued)
        my_orders = [o for o in b.rows[Order][-40:] if o["customer_id"] == customer_id]
        if my_orders and rng.random() < (0.08 if churned else 0.04):
            latest = max(my_orders, key=lambda o: o["created_at"])
            self.complaint(customer_id, tier, latest if rng.random() < 0.6 else rng.choice(my_orders))
        if my_orders and rng.random() < 0.12:
            for _ in range(rng.randint(1, 2)):
                b.add(CsatRating, customer_id=customer_id, channel=rng.choice(("wechat", "web")),
                      sender_id=f"seed-{customer_id}", score=rng.choices((1, 2, 3, 4, 5), weights=(4, 5, 12, 35, 44))[0],
                      comment=None, created_at=b.days_ago(rng.randint(1, 200)))

    def complaint(self, customer_id: int, tier: str, order: dict[str, Any]) -> None:
        b, rng = self.b, self.rng
        category = rng.choices(list(_COMPLAINT_WEIGHTS), weights=list(_COMPLAINT_WEIGHTS.values()))[0]
        product = next(i["name"] for i in reversed(b.rows[OrderItem]) if i["order_id"] == order["id"])
        description = rng.choice(_COMPLAINTS[category]).format(p=product)
        created = max(order["created_at"] + timedelta(days=rng.uniform(1, 10)), b.now - timedelta(days=120))
        created = min(created, b.now - timedelta(hours=1))
        severity = policy.complaint_severity(category, description, tier)
        recent = b.now - created < timedelta(days=14)
        status = rng.choice(("open", "pending")) if recent else rng.choice(("resolved", "closed"))
        complaint_id = b.add(
            Complaint, ticket_number=b.number("TS", created), customer_id=customer_id, order_id=order["id"],
            reported_order_number=order["order_number"], category=category, description=description,
            severity=severity, status=status, channel=rng.choice(("wechat", "web")),
            sender_id=f"seed-{customer_id}", sla_due_at=policy.sla_due(severity, created), created_at=created,
            resolved_at=None if recent else created + timedelta(hours=rng.randint(2, 40)),
        )
        if recent and rng.random() < 0.4:
            b.add(Escalation, customer_id=customer_id, complaint_id=complaint_id, status="pending",
                  priority=policy.escalation_priority(tier, "投诉跟进", severity), reason="投诉跟进，客户要求人工处理",
                  channel="wechat", sender_id=f"seed-{customer_id}", assigned_to=None, created_at=created,
                  resolved_at=None)


def _finish_demo_totals(b: _Builder) -> None:
    """The demo customers' total_spent is the sum of their spending orders."""
    for row in b.rows[Customer][:3]:
        row["total_spent"] = round(
            sum(o["total"] for o in b.rows[Order]
                if o["customer_id"] == row["id"] and o["status"] in policy.SPENDING_STATUSES),
            2,
        )


_INSERT_ORDER = (
    Product, Customer, ChannelIdentity, Order, OrderItem, Coupon, ReturnRequest, Complaint,
    Escalation, Consent, CsatRating, NumberSequence,
)


def seed(
    crm: CRM, *, customers: int = 3000, seed: int = 42, now: Optional[datetime] = None
) -> SeedReport:
    """Fill an empty CRM (schema created if missing) with demo and generated data."""
    started = time.perf_counter()
    crm.create_schema()
    if not crm.is_empty():
        raise RuntimeError("the CRM database is not empty")
    b = _Builder(random.Random(seed), _hour(now))
    for index, item in enumerate(PRODUCTS):
        b.add(Product, id=index + 1, sku=item.sku, name=item.name, aliases="|".join(item.aliases),
              category=item.category, price=item.price, repurchase_days=item.repurchase_days,
              warranty_months=item.warranty_months, description=item.description, active=True)
    _demo(b)
    _finish_demo_totals(b)
    population = _Population(b)
    for _ in range(max(customers, 0)):
        population.customer()

    # Ticket numbers continue from the seeded ones.
    b.rows[NumberSequence] = [{"stem": stem, "last": last} for stem, last in sorted(b.daily_numbers.items())]

    with crm.engine.begin() as connection:
        for model in _INSERT_ORDER:
            rows = b.rows.get(model)
            if rows:
                connection.execute(model.__table__.insert(), rows)
        if connection.dialect.name == "postgresql":
            # Explicit ids do not advance PostgreSQL sequences; later inserts would collide.
            for model in _INSERT_ORDER[:-1]:  # NumberSequence has no id
                table = model.__tablename__
                connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                ))
    report = SeedReport(
        customers=len(b.rows[Customer]),
        orders=len(b.rows[Order]),
        order_items=len(b.rows[OrderItem]),
        complaints=len(b.rows[Complaint]),
        seconds=round(time.perf_counter() - started, 2),
    )
    log.info("seeded %s customers and %s orders in %.2f s", report.customers, report.orders, report.seconds)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_adapter.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="generated customers besides the 3 demo ones")
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    parser.add_argument("--if-empty", action="store_true", help="do nothing if the CRM already has customers")
    parser.add_argument("--reset", action="store_true", help="drop all CRM tables first (destroys data)")
    parser.add_argument("--url", help="database URL (default: KEFU_CRM_URL or var/crm.sqlite3)")
    args = parser.parse_args(argv)

    crm = CRM(args.url) if args.url else CRM.from_env()
    where = repr(crm)
    try:
        if args.reset:
            # Through the migrations, so their bookkeeping goes too.
            migrate.downgrade(crm.engine, "base")
        crm.create_schema()
        if not crm.is_empty():
            if args.if_empty:
                print(f"{where} already has data; nothing to do")
                return 0
            print(f"{where} is not empty; use --if-empty to skip or --reset to start over", file=sys.stderr)
            return 1
        report = seed(crm, customers=args.customers, seed=args.seed)
    finally:
        crm.dispose()
    print(
        f"seeded {where}: {report.customers} customers, {report.orders} orders, "
        f"{report.order_items} items, {report.complaints} complaints in {report.seconds:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
