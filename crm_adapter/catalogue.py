"""The demo shop's product catalogue and China's regions.

Kept in code rather than only in the database because two things are built
from it: the seed data of the embedded CRM, and (through the CRM) the spaCy
entity-ruler patterns that let the bot recognise product, category and city
names.  A real deployment replaces the seed; the ruler is always rebuilt from
whatever products the CRM holds at training time.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Optional


@dataclass(frozen=True)
class CatalogueItem:
    sku: str
    name: str
    category: str
    price: float
    # Typical days until a customer needs to buy it again; None for durables.
    repurchase_days: Optional[int]
    warranty_months: int
    description: str
    aliases: tuple[str, ...] = ()


CATEGORIES: tuple[str, ...] = (
    "手机数码",
    "家用电器",
    "美妆个护",
    "食品饮料",
    "母婴用品",
    "服饰鞋包",
    "家居日用",
    "宠物用品",
)

# Words customers use for a category, mapped to the canonical category name.
CATEGORY_ALIASES: dict[str, str] = {
    "数码": "手机数码",
    "手机": "手机数码",
    "电子产品": "手机数码",
    "家电": "家用电器",
    "电器": "家用电器",
    "化妆品": "美妆个护",
    "护肤品": "美妆个护",
    "美妆": "美妆个护",
    "个护": "美妆个护",
    "零食": "食品饮料",
    "食品": "食品饮料",
    "饮料": "食品饮料",
    "母婴": "母婴用品",
    "奶粉": "母婴用品",
    "衣服": "服饰鞋包",
    "服装": "服饰鞋包",
    "鞋子": "服饰鞋包",
    "包包": "服饰鞋包",
    "日用品": "家居日用",
    "家居": "家居日用",
    "宠物": "宠物用品",
}

PRODUCTS: tuple[CatalogueItem, ...] = (
    CatalogueItem("SKU1001", "星辰X5手机", "手机数码", 2999.0, None, 12,
                  "6.5英寸OLED屏，256GB存储，5000mAh电池，支持66W快充。", ("星辰X5", "X5手机")),
    CatalogueItem("SKU1002", "星辰Pad平板", "手机数码", 1899.0, None, 12,
                  "11英寸2.5K屏平板，支持手写笔，适合网课和追剧。", ("星辰平板", "平板", "平板电脑")),
    CatalogueItem("SKU1003", "声浪降噪耳机", "手机数码", 599.0, None, 12,
                  "主动降噪蓝牙耳机，续航30小时，支持双设备连接。", ("降噪耳机", "声浪耳机", "耳机", "蓝牙耳机")),
    CatalogueItem("SKU1004", "极速充电宝", "手机数码", 129.0, None, 12,
                  "20000mAh移动电源，支持22.5W快充，可带上飞机。", ("充电宝",)),
    CatalogueItem("SKU1005", "智能手环7", "手机数码", 249.0, None, 12,
                  "心率血氧监测，14天续航，50米防水。", ("手环", "智能手环")),
    CatalogueItem("SKU2001", "清风空气净化器", "家用电器", 1299.0, None, 24,
                  "CADR 500m³/h，适用60平米，滤芯建议6个月更换。", ("空气净化器", "净化器")),
    CatalogueItem("SKU2002", "净化器滤芯", "家用电器", 199.0, 180, 6,
                  "清风空气净化器原装滤芯，建议每6个月更换一次。", ("滤芯",)),
    CatalogueItem("SKU2003", "小暖电暖器", "家用电器", 399.0, None, 24,
                  "2200W速热，倾倒断电，适合卧室和办公室。", ("电暖器", "取暖器")),
    CatalogueItem("SKU2004", "轻语扫地机器人", "家用电器", 1999.0, None, 24,
                  "激光导航，扫拖一体，自动集尘。", ("扫地机器人", "扫地机")),
    CatalogueItem("SKU2005", "鲜榨破壁机", "家用电器", 699.0, None, 24,
                  "1.75L容量，8档调速，可做豆浆和辅食。", ("破壁机",)),
    CatalogueItem("SKU3001", "水润保湿面霜", "美妆个护", 169.0, 60, 0,
                  "50ml，玻尿酸保湿，适合干性和混合性肌肤。", ("保湿面霜", "面霜")),
    CatalogueItem("SKU3002", "氨基酸洗面奶", "美妆个护", 69.0, 45, 0,
                  "120g温和氨基酸配方，敏感肌可用。", ("洗面奶",)),
    CatalogueItem("SKU3003", "清爽防晒霜", "美妆个护", 99.0, 60, 0,
                  "SPF50+ PA++++，清爽不油腻，50ml。", ("防晒霜", "防晒")),
    CatalogueItem("SKU3004", "柔顺洗发水", "美妆个护", 59.0, 45, 0,
                  "500ml无硅油洗发水，适合油性头皮。", ("洗发水",)),
    CatalogueItem("SKU3005", "电动牙刷Pro", "美妆个护", 299.0, None, 12,
                  "声波电动牙刷，5种模式，续航60天。", ("电动牙刷", "牙刷")),
    CatalogueItem("SKU3006", "电动牙刷刷头", "美妆个护", 49.0, 90, 0,
                  "电动牙刷Pro替换刷头，3支装，建议3个月更换。", ("刷头",)),
    CatalogueItem("SKU4001", "云南小粒咖啡豆", "食品饮料", 88.0, 30, 0,
                  "500g中深烘焙，坚果巧克力风味。", ("咖啡豆", "咖啡")),
    CatalogueItem("SKU4002", "每日坚果礼盒", "食品饮料", 129.0, 30, 0,
                  "30袋独立包装，6种坚果果干。", ("每日坚果", "坚果")),
    CatalogueItem("SKU4003", "高山乌龙茶", "食品饮料", 158.0, 60, 0,
                  "台湾高山乌龙，250g罐装。", ("乌龙茶", "茶叶")),
    CatalogueItem("SKU4004", "有机纯牛奶", "食品饮料", 79.0, 14, 0,
                  "250ml×12盒，有机牧场奶源。", ("纯牛奶", "牛奶")),
    CatalogueItem("SKU5001", "婴儿纸尿裤L码", "母婴用品", 139.0, 20, 0,
                  "L码52片，超薄透气，适合9-14kg宝宝。", ("纸尿裤", "尿不湿")),
    CatalogueItem("SKU5002", "婴儿配方奶粉3段", "母婴用品", 268.0, 25, 0,
                  "800g罐装，适合1-3岁宝宝。", ("婴儿奶粉",)),
    CatalogueItem("SKU5003", "婴儿湿巾", "母婴用品", 39.0, 20, 0,
                  "80抽×6包，无酒精无香精。", ("湿巾",)),
    CatalogueItem("SKU6001", "轻薄羽绒服", "服饰鞋包", 499.0, None, 0,
                  "90%白鸭绒，可收纳，男女同款。", ("羽绒服",)),
    CatalogueItem("SKU6002", "缓震跑步鞋", "服饰鞋包", 399.0, None, 3,
                  "轻量缓震中底，透气网面。", ("跑步鞋", "跑鞋", "运动鞋")),
    CatalogueItem("SKU6003", "真皮通勤双肩包", "服饰鞋包", 699.0, None, 6,
                  "头层牛皮，可放15.6寸笔记本。", ("双肩包", "背包")),
    CatalogueItem("SKU7001", "纯棉四件套", "家居日用", 299.0, None, 0,
                  "100%新疆长绒棉，1.8米床适用。", ("四件套", "床上四件套")),
    CatalogueItem("SKU7002", "抽纸24包", "家居日用", 49.0, 30, 0,
                  "3层100抽×24包，原生木浆。", ("抽纸", "纸巾")),
    CatalogueItem("SKU7003", "洗衣凝珠", "家居日用", 59.0, 40, 0,
                  "52颗装，除菌除螨，留香持久。", ("洗衣珠",)),
    CatalogueItem("SKU8001", "全价成猫粮", "宠物用品", 189.0, 30, 0,
                  "10斤装，无谷配方，鸡肉三文鱼口味。", ("猫粮",)),
    CatalogueItem("SKU8002", "豆腐猫砂", "宠物用品", 69.0, 20, 0,
                  "6L×4包，可冲厕所，低尘。", ("猫砂",)),
    CatalogueItem("SKU8003", "成犬狗粮", "宠物用品", 219.0, 30, 0,
                  "15斤装，适合中大型犬。", ("狗粮",)),
)


def load_regions() -> list[str]:
    """Provinces and cities, one per line, from the packaged region list."""
    text = resources.files("crm_adapter.data").joinpath("regions.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def canonical_category(text: Optional[str]) -> Optional[str]:
    """The canonical category for a category name or a customer's word for it.

    ``"宠物"`` -> ``"宠物用品"``; an unknown word -> None.
    """
    if not text:
        return None
    text = text.strip()
    if text in CATEGORIES:
        return text
    return CATEGORY_ALIASES.get(text)
