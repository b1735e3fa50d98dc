"""Checking and normalising what customers type, with Chinese refusals.

Every function returns the canonical value or raises `InvalidInput` whose
``message_zh`` the bot can say as it is: it names what was wrong and shows a
correct example, because the customer's next message should be the fix.

Chinese keyboards readily produce full-width digits and letters (１３８…, ＠),
which are the same thing to the customer. Structured values (numbers, codes,
emails, dates) are NFKC-normalised; free text, addresses and names only have
full-width digits and letters folded, because NFKC would also turn Chinese
punctuation (，。：) into ASCII and change what the customer wrote.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any, Optional

from .errors import InvalidInput

# Pattern bodies, shared by the anchored validators below and by `find_in_text`
# (the bot picks a phone, e-mail or tax number out of a customer's sentence).
MOBILE = r"1[3-9][0-9]{9}"
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# 统一社会信用代码: 18 characters from digits and capitals without I, O, S, V, Z.
TAX_NUMBER = r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}"

ORDER_NUMBER_RE = re.compile(r"^[0-9]{12}$")
MOBILE_RE = re.compile(f"^{MOBILE}$")
EMAIL_RE = re.compile(f"^{EMAIL}$")
TAX_NUMBER_RE = re.compile(f"^{TAX_NUMBER}$")
# In free text: not glued to more digits/letters of the same kind.
_IN_TEXT = {
    "mobile": re.compile(rf"(?<![0-9]){MOBILE}(?![0-9])"),
    "email": re.compile(rf"(?<![A-Za-z0-9._%+-]){EMAIL}"),
    "tax_number": re.compile(rf"(?<![0-9A-Z]){TAX_NUMBER}(?![0-9A-Z])"),
    # 1990年5月3日 / 1990-5-3 / 1990.05.03 / 19900503 inside a sentence;
    # `birthday()` then decides whether it is a real, plausible date.
    "birthday": re.compile(r"(?<![0-9])(?:19|20)[0-9]{2}(?:\s*[-/.年]\s*[0-9]{1,2}\s*[-/.月]\s*[0-9]{1,2}\s*[日号]?"
                           r"|[0-9]{4})(?![0-9])"),
}
TICKET_NUMBER_RE = re.compile(r"^TS[0-9]{12,14}$")  # date + 4 digits (more after 9999 a day)
NAME_RE = re.compile(r"^[\u4e00-\u9fff·A-Za-z][\u4e00-\u9fff·A-Za-z .'-]*$")
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_BIRTHDAY_RES = (
    re.compile(r"^([0-9]{4})\s*[-/.年]\s*([0-9]{1,2})\s*[-/.月]\s*([0-9]{1,2})\s*[日号]?$"),
    re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})$"),
)


def find_in_text(kind: str, text: Any) -> Optional[str]:
    """The first phone number ("mobile"), e-mail, tax number or birthday in a sentence, or None.

    Tax numbers are matched upper-cased (customers type them in lower case)."""
    value = str(text or "")
    if kind == "tax_number":
        value = value.upper()
    match = _IN_TEXT[kind].search(value)
    return match.group() if match else None


_ADMIN_MARKERS = ("省", "市", "区", "县", "旗", "州", "盟")
_DETAIL_MARKERS = (
    "路", "街", "道", "巷", "弄", "号", "村", "组", "镇", "乡", "小区",
    "大厦", "栋", "幢", "楼", "室", "单元", "苑", "园", "里",
)
# Policy: 港澳台 and overseas are not delivered to yet.
_UNSERVED_MARKERS = ("香港", "澳门", "台湾", "台北", "台中", "高雄", "海外", "国外", "美国", "日本", "韩国", "新加坡")

MSG_ORDER_NUMBER = "订单号是12位数字，例如 260315004821，请再核对一下。"
MSG_LAST4 = "请告诉我下单手机号的后4位数字。"
MSG_PHONE = "手机号格式好像不对，请输入11位大陆手机号，例如 13812345678。"
MSG_EMAIL = "邮箱格式好像不对，请检查一下，例如 li.na@example.com。"
MSG_ADDRESS = "这个地址好像不够完整，请提供省市区和街道门牌号，例如：上海市浦东新区张江路100号。"
MSG_ADDRESS_UNSERVED = "抱歉，港澳台及海外地区暂时还不能配送，请提供中国大陆的收货地址。"
MSG_BIRTHDAY = "请告诉我完整的出生日期，例如 1990年5月3日。"
MSG_BIRTHDAY_RANGE = "这个出生日期好像不太对，请再确认一下。"
MSG_NAME = "姓名请填写2到20个字的中文或英文名字，不要带数字或符号。"
MSG_TAX_NUMBER = "税号应为18位统一社会信用代码（例如 91310115MA1K4ABC2X），请核对一下。"
MSG_TICKET_NUMBER = "投诉单号是 TS 加12位数字，例如 TS202601150001，请再核对一下。"
MSG_INVOICE_TITLE = "请提供发票抬头：个人发票写“个人”，企业发票写公司全称。"

PERSONAL_INVOICE_TITLES = ("个人", "个人发票")


_FULL_WIDTH_ALNUM = {
    **{0xFF10 + i: 0x30 + i for i in range(10)},
    **{0xFF21 + i: 0x41 + i for i in range(26)},
    **{0xFF41 + i: 0x61 + i for i in range(26)},
    0x3000: 0x20,  # ideographic space
}


def _clean(value: Any) -> str:
    """A structured value: NFKC-normalised and trimmed."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).strip()


def prose(value: Any) -> str:
    """Customer prose: full-width digits and letters folded, punctuation kept, trimmed."""
    if value is None:
        return ""
    return str(value).translate(_FULL_WIDTH_ALNUM).strip()


def order_number(value: Any) -> str:
    text = re.sub(r"\s+", "", _clean(value))
    if not ORDER_NUMBER_RE.match(text):
        raise InvalidInput(MSG_ORDER_NUMBER)
    return text


def phone_last4(value: Any) -> str:
    text = re.sub(r"\s+", "", _clean(value))
    if not re.fullmatch(r"[0-9]{4}", text):
        raise InvalidInput(MSG_LAST4)
    return text


def phone(value: Any) -> str:
    text = re.sub(r"[\s-]", "", _clean(value))
    text = re.sub(r"^(\+?86)(?=1[0-9]{10}$)", "", text)
    if not MOBILE_RE.match(text):
        raise InvalidInput(MSG_PHONE)
    return text


def email(value: Any) -> str:
    text = _clean(value)
    if len(text) > 254 or not EMAIL_RE.match(text):
        raise InvalidInput(MSG_EMAIL)
    local, _, domain = text.partition("@")
    return f"{local}@{domain.lower()}"


def address(value: Any) -> str:
    cleaned = re.sub(r"\s+", " ", prose(value))
    if any(marker in cleaned for marker in _UNSERVED_MARKERS):
        raise InvalidInput(MSG_ADDRESS_UNSERVED)
    if not 8 <= len(cleaned) <= 120 or len(_CJK_RE.findall(cleaned)) < 4:
        raise InvalidInput(MSG_ADDRESS)
    if not any(m in cleaned for m in _ADMIN_MARKERS) or not any(m in cleaned for m in _DETAIL_MARKERS):
        raise InvalidInput(MSG_ADDRESS)
    return cleaned


def birthday(value: Any, today: date) -> date:
    if isinstance(value, date):
        parsed = value
    else:
        text = _clean(value)
        parsed = None
        for pattern in _BIRTHDAY_RES:
            match = pattern.match(text)
            if match:
                try:
                    parsed = date(*(int(g) for g in match.groups()))
                except ValueError:
                    raise InvalidInput(MSG_BIRTHDAY_RANGE) from None
                break
        if parsed is None:
            raise InvalidInput(MSG_BIRTHDAY)
    if parsed > today or parsed.year < today.year - 120:
        raise InvalidInput(MSG_BIRTHDAY_RANGE)
    return parsed


def profile_value(field: str, value: Any, today: date) -> Any:
    """A new value for one of a customer's profile fields, as the CRM stores it (`InvalidInput` when it is not one).

    The chat checks an answer with this before asking to confirm it, so what
    the customer confirms is what the CRM will accept.
    """
    if field == "birthday":
        return birthday(value, today)
    return {"phone": phone, "email": email, "address": address, "name": name}[field](value)


def name(value: Any) -> str:
    cleaned = re.sub(r"\s+", " ", prose(value))
    if not 2 <= len(cleaned) <= 20 or not NAME_RE.match(cleaned):
        raise InvalidInput(MSG_NAME)
    return cleaned


#: Kinds of invoice, not whose name goes on it (「公司」 answering 「公司请输入公司全称」).
_NOT_A_TITLE = re.compile(r"^(?:公司|企业|单位|公司的?|企业的?|单位的?)(?:发票|抬头|票)?$|^(?:增值税)?(?:专票|普票|专用发票|普通发票|电子发票|纸质发票)$")


def invoice_title(value: Any) -> str:
    cleaned = prose(value)
    if not 2 <= len(cleaned) <= 100 or _NOT_A_TITLE.match(cleaned):
        raise InvalidInput(MSG_INVOICE_TITLE)
    return cleaned


def tax_number(value: Any, title: str) -> Optional[str]:
    """Company invoices need a valid 税号; personal ones (抬头“个人”) take none."""
    text = re.sub(r"\s+", "", _clean(value)).upper()
    if title in PERSONAL_INVOICE_TITLES and not text:
        return None
    if not TAX_NUMBER_RE.match(text):
        raise InvalidInput(MSG_TAX_NUMBER)
    return text


def ticket_number(value: Any) -> str:
    text = re.sub(r"\s+", "", _clean(value)).upper()
    if not TICKET_NUMBER_RE.match(text):
        raise InvalidInput(MSG_TICKET_NUMBER)
    return text


def free_text(value: Any, *, max_len: int, required: bool, message_zh: str) -> str:
    """A description, reason or comment: trimmed; refused if missing or far too long."""
    cleaned = prose(value)
    if (required and not cleaned) or len(cleaned) > max_len:
        raise InvalidInput(message_zh)
    return cleaned


def choice(value: Any, allowed: tuple[str, ...], message_zh: str) -> str:
    text = _clean(value).lower()
    if text not in allowed:
        raise InvalidInput(message_zh)
    return text


def label(value: Any, what: str, max_len: int = 128) -> str:
    """Channel names, sender ids, keys: identifiers the caller must supply."""
    text = _clean(value)
    if not text or len(text) > max_len:
        raise InvalidInput(f"系统参数不完整（{what}），请稍后再试。")
    return text


def limit(value: Any, *, default: int, maximum: int = 50) -> int:
    try:
        number = int(value if value is not None else default)
    except (TypeError, ValueError):
        number = default
    return max(1, min(number, maximum))


def database_id(value: Any, message_zh: str) -> int:
    """A row id that arrived from a Rasa slot: int, float (1.0) or text ("1").

    Database integers are 64-bit: a larger number (a slot set through the HTTP
    API, say) names no row, and SQLite would raise OverflowError on it."""
    number: Optional[int] = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 0 < number < 2**63:
        raise InvalidInput(message_zh)
    return number
