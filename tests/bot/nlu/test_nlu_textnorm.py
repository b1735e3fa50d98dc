"""bot.nlu.textnorm: the text rewriting itself, and offset alignment."""
from __future__ import annotations

import time
import unicodedata

import pytest

from bot.nlu import textnorm
from bot.nlu.textnorm import normalize_text, normalize_with_alignment, realign_entities


@pytest.mark.parametrize("raw, expected", [
    ("我要退貨", "我要退货"),
    ("請問這個產品還有貨嗎", "请问这个产品还有货吗"),
    ("訂單號碼是多少", "订单号码是多少"),
    ("我要退货", "我要退货"),  # simplified stays as it is
    ("星辰Ｘ５手機", "星辰X5手机"),
    ("１３８１２３４５６７８", "13812345678"),
    ("邮箱：ｌｉ．ｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ。", "邮箱：li.na@example.com。"),
    ("￥１９９", "¥199"),
    ("ＡＢＣ－１２３／４５", "ABC-123/45"),
])
def test_traditional_and_fullwidth_conversions(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    # Chinese sentence punctuation stays full-width ...
    ("好的，谢谢！", "好的，谢谢！"),
    ("在吗？", "在吗？"),
    ("几点发货。", "几点发货。"),
    # ... and stray ASCII punctuation after Chinese text joins it
    ("在吗??", "在吗？？"),
    ("好的,谢谢!", "好的，谢谢！"),
    ("邮箱:li@qq.com", "邮箱：li@qq.com"),
    # ASCII punctuation in ASCII context is left alone
    ("下午3:30到", "下午3:30到"),
    ("价格12.5元", "价格12.5元"),
    ("li.na@example.com.", "li.na@example.com."),
    ("ok, thanks!", "ok, thanks!"),
])
def test_punctuation_policy(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_sentence_stop_is_not_glued_to_an_email() -> None:
    # The reason 。 is kept: converted to "." it would become part of the email.
    import re

    email = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
    text = normalize_text("我的邮箱是ｌｉ．ｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ。谢谢")
    assert email.search(text).group(0) == "li.na@example.com"


@pytest.mark.parametrize("raw, expected", [
    ("  我要   退货  ", "我要退货"),
    ("我要\u3000\u3000退货", "我要退货"),            # ideographic space
    ("第一行\n\n第二行\t结束", "第一行第二行结束"),
    ("hi   你好", "hi 你好"),                      # space next to Latin letters kept
    ("星辰X5 \u00a0 手机", "星辰X5 手机"),
    ("Hello  world", "Hello world"),
    ("退\u200b货", "退货"),                          # zero-width space
    ("\ufeff我要退货\u200d", "我要退货"),              # BOM, zero-width joiner
    ("订单\u202e12345\u202c", "订单12345"),           # bidi override
    ("退\x00货\x07\x1b", "退货"),                    # control characters
    ("软\u00ad件", "软件"),                          # soft hyphen
    ("坏\ud800掉", "坏掉"),                          # lone surrogate
])
def test_whitespace_and_invisible_characters(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_invisible_table_matches_unicodedata() -> None:
    table = {cp for lo, hi in textnorm._INVISIBLE_RANGES for cp in range(lo, hi + 1)}
    expected = {
        cp for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs") and not chr(cp).isspace()
    }
    assert table == expected


@pytest.mark.parametrize("raw", [
    None, "", "   ", "\u200b\u200b", "\n\t", "😀", "😀😀👍🏻", "👨\u200d👩\u200d👧",
    "<b>我要退貨</b><script>alert('x')</script>", "&lt;p&gt;你好&amp;nbsp;", "<<<>>>",
    "🉑", "\U0010FFFF", "ﷺ", "ﾃｽﾄ", "１" * 5, "/", "??", "...",
])
def test_odd_inputs_do_not_crash(raw) -> None:
    out = normalize_text(raw)
    assert isinstance(out, str)
    out.encode("utf-8")  # no lone surrogates survive
    assert normalize_text(out) == out  # idempotent


def test_emoji_and_html_are_kept_as_text() -> None:
    assert normalize_text("😀😀") == "😀😀"
    assert normalize_text("<b>我要退貨</b>") == "<b>我要退货</b>"


def test_normalisation_is_idempotent() -> None:
    samples = ["我要退貨，訂單２６０３１５００４８２１!!", "  在嗎??  ", "星辰Ｘ５ 手機,寄到杭州"]
    for text in samples:
        once = normalize_text(text)
        assert normalize_text(once) == once


def test_length_cap_default_and_configurable() -> None:
    long = "我要退貨，" * 1000  # 5,000 characters
    assert len(long) == 5000
    assert len(normalize_text(long)) == textnorm.DEFAULT_MAX_LENGTH == 1000
    assert normalize_text(long, max_length=10) == "我要退货，我要退货，"
    assert normalize_text("短消息", max_length=10) == "短消息"
    with pytest.raises(ValueError):
        normalize_text("x", max_length=0)


def test_length_cap_bounds_the_work() -> None:
    normalize_text("预热")
    started = time.perf_counter()
    for _ in range(20):
        normalize_text("我要退貨請問運費多少錢" * 500)  # 5,500 chars
    per_message = (time.perf_counter() - started) / 20
    huge = "貨" * 2_000_000
    started = time.perf_counter()
    assert len(normalize_text(huge)) == 1000
    assert time.perf_counter() - started < 0.5
    assert per_message < 0.05, per_message


def test_cap_counts_after_whitespace_is_collapsed() -> None:
    text = " \u200b " * 3 + "我要退货"  # 13 raw characters, 4 after normalisation
    assert normalize_text(text, max_length=4) == "我要退货"


def test_intent_shorthand_is_left_alone() -> None:
    payload = '/inform{"city": "臺北", "note": "a  b"}'
    assert normalize_text(payload) == payload
    assert len(normalize_text("/greet" + "x" * 5000)) == 1000


def test_switches() -> None:
    assert normalize_text("退貨", simplify=False) == "退貨"
    assert normalize_text("Ｘ５", fullwidth=False) == "Ｘ５"
    assert normalize_text("在吗??", cjk_punctuation=False) == "在吗??"


def test_t2s_converter_is_loaded_once() -> None:
    assert textnorm.t2s_converter() is textnorm.t2s_converter()


# -- alignment -------------------------------------------------------------

def _entities_text(text, entities):
    return [text[e["start"]:e["end"]] for e in entities]


def test_alignment_maps_each_output_char_to_its_source() -> None:
    raw = "  我要\u200b 退貨 ，訂單  ２６０３１５００４８２１"
    out, index = normalize_with_alignment(raw)
    assert out == normalize_text(raw) == "我要退货，订单 260315004821"
    assert len(index) == len(out)
    assert index == sorted(index)
    for position, source in enumerate(index):
        if out[position] != " ":
            assert normalize_text(raw[source]) == out[position]


@pytest.mark.parametrize("raw, annotated, expected", [
    # length-preserving changes only
    ("订单２６０３１５００４８２１要退貨", [("２６０３１５００４８２１", "order_number")], ["260315004821"]),
    # whitespace collapsed / removed before and inside the entity
    ("  我要  退貨   到  杭州 市 ", [("杭州 市", "city")], ["杭州市"]),
    # zero-width characters inside and around
    ("寄到\u200b上\u200b海\u200b吧", [("上\u200b海", "city")], ["上海"]),
    # an entity that starts and ends with whitespace
    ("寄到   上海  吧", [("   上海  ", "city")], ["上海"]),
    # two entities, whitespace between them
    ("手机号  １３８１２３４５６７８   订单  260315004821",
     [("１３８１２３４５６７８", "phone_number"), ("260315004821", "order_number")],
     ["13812345678", "260315004821"]),
])
def test_realign_entities(raw, annotated, expected) -> None:
    entities = []
    for surface, name in annotated:
        start = raw.index(surface)
        entities.append({"start": start, "end": start + len(surface), "value": surface,
                         "entity": name})
    out, index = normalize_with_alignment(raw)
    kept, dropped = realign_entities(raw, out, index, entities)
    assert not dropped
    assert _entities_text(out, kept) == expected
    assert [e["value"] for e in kept] == expected
    assert [e["entity"] for e in kept] == [name for _, name in annotated]


def test_realign_keeps_synonym_values_and_drops_vanished_entities() -> None:
    raw = "我要投訴快遞\u200b太慢" + "啊" * 20
    entities = [
        {"start": 4, "end": 6, "value": "logistics", "entity": "complaint_category"},
        {"start": 6, "end": 7, "value": "\u200b", "entity": "junk"},
        {"start": 20, "end": 25, "value": raw[20:25], "entity": "beyond_cap"},
    ]
    out, index = normalize_with_alignment(raw, max_length=12)
    kept, dropped = realign_entities(raw, out, index, entities)
    assert [e["entity"] for e in kept] == ["complaint_category"]
    assert out[kept[0]["start"]:kept[0]["end"]] == "快递"
    assert kept[0]["value"] == "logistics"
    assert {e["entity"] for e in dropped} == {"junk", "beyond_cap"}
