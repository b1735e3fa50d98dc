"""Text normalisation for Chinese customer messages (pure functions, no Rasa).

Used by the Rasa component :class:`bot.nlu.normalizer.ChineseNormalizer` on
every message, and by :mod:`bot.nlu.build_spacy` on the entity-ruler patterns,
so that patterns and messages are always in the same form.

What it does, in this order:

1. hard pre-cap of absurdly long input (``max_length * _PRECAP_FACTOR`` chars),
   so that nothing below ever runs over megabytes;
2. delete invisible characters: zero-width space/joiners, BOM, bidi controls,
   soft hyphen and other ``Cf`` format characters, ``Cc`` control characters
   that are not whitespace, and lone surrogates (``Cs``, which cannot be
   encoded to UTF-8 and would crash logging/JSON later);
3. collapse every run of whitespace (including the ideographic space U+3000,
   NBSP, tabs and newlines) into one ASCII space, strip both ends, and drop
   the space entirely when it sits between two Chinese characters (or Chinese
   punctuation): "我要 退货" → "我要退货". jieba, and so Rasa's JiebaTokenizer,
   emits a token " " for every space, which is noise for the featurizers;
   a space next to Latin letters or digits ("hi 你好", "X5 手机",
   "邮箱 li@qq.com") is kept, so regexes keep their left boundary;
4. cap the length at ``max_length`` characters;
5. full-width ASCII → half-width: letters, digits and the "technical" symbols
   (＠．－＿＋／％＃＆＊＝～ ...) become ASCII, so the order-number / phone /
   email / tax-number regexes and the product patterns match text typed in a
   full-width input mode (``１３８１２３４５６７８``, ``ｌｉ．ｎａ＠ｑｑ．ｃｏｍ``,
   ``星辰Ｘ５``). ``￥`` becomes ``¥``.
   The Chinese sentence punctuation ，！？：；（） is deliberately KEPT
   full-width, and 。、“” are not touched either (see below);
6. unify sentence punctuation the other way: a run of ASCII ``, ! ? ; :``
   directly after a Chinese character or Chinese punctuation becomes
   ，！？；：  (``在吗??`` → ``在吗？？``, ``好的,谢谢`` → ``好的，谢谢``);
7. Traditional → Simplified with OpenCC ``t2s`` (``我要退貨`` → ``我要退货``).

Why Chinese punctuation stays full-width: jieba splits ，and , alike, so the
direction does not change tokenisation of Chinese text; but the ASCII forms
are ambiguous next to letters and digits. ``。``→``.`` would glue a sentence
stop onto the preceding email or model number (``li@qq.com.`` is what an email
regex then extracts), ``，``→``,`` turns ``1，299`` into a thousands number,
``？``/``！`` into URL/emphasis characters. The full-width forms are
unambiguous sentence delimiters, they are what the training data (typed on
Chinese IMEs) mostly contains, and mapping the stray ASCII forms that follow
Chinese text onto them (step 6) gives the featurizers one token per
punctuation mark instead of two.

Every step but 1 to 4 replaces one character by exactly one character
(OpenCC's t2s tables are one-to-one in length; this is checked at run time and
a character-by-character conversion is used if a future table were not), so
:func:`normalize_with_alignment` can map every output character back to its
source position, which is what keeps annotated entity offsets in training
data aligned (:func:`realign_entities`).
"""
from __future__ import annotations

import bisect
import re
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

DEFAULT_MAX_LENGTH = 1000
# Raw input is cut at max_length * this before any regex runs. Only steps 2
# and 3 shorten text, so this loses content only if more than 3/4 of the first
# (factor * max_length) characters are whitespace or invisible.
_PRECAP_FACTOR = 4

# Invisible characters: Unicode categories Cc (minus whitespace), Cf and Cs.
# Generated from unicodedata (Unicode 13.0, Python 3.10) and kept as a literal
# so that importing this module stays fast; tests check it against unicodedata.
_INVISIBLE_RANGES: Tuple[Tuple[int, int], ...] = (
    (0x0000, 0x0008), (0x000E, 0x001B), (0x007F, 0x0084), (0x0086, 0x009F),
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F),
    (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)


def _char_class(ranges: Iterable[Tuple[int, int]]) -> str:
    parts = []
    for lo, hi in ranges:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "[" + "".join(parts) + "]"


_INVISIBLE_RE = re.compile(_char_class(_INVISIBLE_RANGES) + "+")
_WHITESPACE_RE = re.compile(r"\s+")

# Full-width forms U+FF01..U+FF5E map to ASCII U+0021..U+007E, except the
# Chinese sentence punctuation, which keeps its full-width form.
_KEEP_FULLWIDTH = "，！？：；（）"
_FULLWIDTH_TABLE: Dict[int, str] = {
    cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F) if chr(cp) not in _KEEP_FULLWIDTH
}
_FULLWIDTH_TABLE[0xFFE5] = "\u00a5"  # ￥ -> ¥

# ASCII sentence punctuation directly after Chinese text -> full-width.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f" + re.escape(_KEEP_FULLWIDTH)
_ASCII_AFTER_CJK_RE = re.compile(f"(?<=[{_CJK}])[,!?;:]+")
_SPACE_BETWEEN_CJK_RE = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")
_TO_FULLWIDTH = str.maketrans({",": "，", "!": "！", "?": "？", ";": "；", ":": "："})

# Messages in Rasa's "/intent{...}" shorthand (buttons, tests) are left alone
# apart from the length cap: they are written by us, and rewriting the JSON
# inside them could break it.
_INTENT_SHORTHAND_RE = re.compile(r"^/[A-Za-z_]")

_converter_lock = threading.Lock()
_converter: Any = None


def t2s_converter() -> Any:
    """The process-wide OpenCC t2s converter (dictionaries are loaded once)."""
    global _converter
    if _converter is None:
        with _converter_lock:
            if _converter is None:
                from opencc import OpenCC

                converter = OpenCC("t2s")
                converter.convert("預熱")  # loads the dictionaries now, not on a user's message
                _converter = converter
    return _converter


def to_simplified(text: str) -> str:
    """Traditional → Simplified, guaranteed to keep the length of ``text``."""
    if not text:
        return text
    converted = t2s_converter().convert(text)
    if len(converted) == len(text):
        return converted
    # Phrase tables of the installed OpenCC are length-preserving, so this is
    # only a safety net: per character conversion cannot change the length.
    return "".join(c if len(s := t2s_converter().convert(c)) != 1 else s for c in text)


def _sub(pattern: "re.Pattern[str]", repl: str, text: str,
         index: Optional[List[int]]) -> Tuple[str, Optional[List[int]]]:
    """``pattern.sub(repl, text)`` that also maps output chars to source positions."""
    if index is None:
        return pattern.sub(repl, text), None
    out: List[str] = []
    new_index: List[int] = []
    pos = 0
    for match in pattern.finditer(text):
        out.append(text[pos:match.start()])
        new_index.extend(index[pos:match.start()])
        out.append(repl)
        new_index.extend([index[match.start()]] * len(repl))
        pos = match.end()
    out.append(text[pos:])
    new_index.extend(index[pos:])
    return "".join(out), new_index


def _normalize(text: str, max_length: int, simplify: bool, fullwidth: bool,
               cjk_punctuation: bool, track: bool) -> Tuple[str, Optional[List[int]]]:
    if max_length <= 0:
        raise ValueError("max_length must be positive")
    text = text[: max_length * _PRECAP_FACTOR]
    index: Optional[List[int]] = list(range(len(text))) if track else None

    if _INTENT_SHORTHAND_RE.match(text):
        return text[:max_length], (index[:max_length] if index is not None else None)

    text, index = _sub(_INVISIBLE_RE, "", text, index)
    text, index = _sub(_WHITESPACE_RE, " ", text, index)
    text, index = _sub(_SPACE_BETWEEN_CJK_RE, "", text, index)
    start = len(text) - len(text.lstrip(" "))
    end = len(text.rstrip(" "))
    text = text[start:end]
    if index is not None:
        index = index[start:end]

    text = text[:max_length]
    if index is not None:
        index = index[:max_length]

    # From here on every step is one character for one character.
    if fullwidth:
        text = text.translate(_FULLWIDTH_TABLE)
    if cjk_punctuation:
        text = _ASCII_AFTER_CJK_RE.sub(lambda m: m.group(0).translate(_TO_FULLWIDTH), text)
    if simplify:
        text = to_simplified(text)
    return text, index


def normalize_text(text: Optional[str], max_length: int = DEFAULT_MAX_LENGTH, *,
                   simplify: bool = True, fullwidth: bool = True,
                   cjk_punctuation: bool = True) -> str:
    """Normalises one message text (see the module docstring). ``None`` → ``""``."""
    if not text:
        return ""
    return _normalize(text, max_length, simplify, fullwidth, cjk_punctuation, False)[0]


def normalize_with_alignment(text: Optional[str], max_length: int = DEFAULT_MAX_LENGTH, *,
                             simplify: bool = True, fullwidth: bool = True,
                             cjk_punctuation: bool = True) -> Tuple[str, List[int]]:
    """Like :func:`normalize_text`, plus, for every output character, the
    position in ``text`` it came from (non-decreasing)."""
    if not text:
        return "", []
    normalized, index = _normalize(text, max_length, simplify, fullwidth, cjk_punctuation, True)
    assert index is not None and len(index) == len(normalized)
    return normalized, index


def realign_entities(original: str, normalized: str, index: Sequence[int],
                     entities: Iterable[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Moves entity annotations of ``original`` onto ``normalized``.

    ``index`` comes from :func:`normalize_with_alignment`. Returns
    ``(kept, dropped)``: an entity is dropped when none of its characters
    survive (it consisted only of invisible characters, or lay beyond the
    length cap). Whitespace that normalisation leaves at the edges of a span
    is trimmed. An entity whose ``value`` was the annotated text itself gets
    the normalised text as value; an explicit synonym value
    (``[快遞](complaint_category:logistics)``) is kept as written.
    """
    kept: List[Dict[str, Any]] = []
    dropped: List[Dict[str, Any]] = []
    for entity in entities:
        start, end = entity.get("start"), entity.get("end")
        if start is None or end is None:
            kept.append(dict(entity))
            continue
        new_start = bisect.bisect_left(index, start)
        new_end = bisect.bisect_left(index, end)
        while new_start < new_end and normalized[new_start] == " ":
            new_start += 1
        while new_end > new_start and normalized[new_end - 1] == " ":
            new_end -= 1
        if new_end <= new_start:
            dropped.append(dict(entity))
            continue
        moved = dict(entity)
        moved["start"], moved["end"] = new_start, new_end
        if entity.get("value") == original[start:end]:
            moved["value"] = normalized[new_start:new_end]
        kept.append(moved)
    return kept, dropped
