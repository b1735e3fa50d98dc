"""Hypothesis strategies for bad input, and how many examples to run.

`KEFU_FUZZ_EXAMPLES` sets the examples per fuzz test: a moderate default for
`make test` (the whole security module adds about two minutes), more for
`make bench` (`KEFU_FUZZ_EXAMPLES=300`).
"""
from __future__ import annotations

import json
import os
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("KEFU_FUZZ_EXAMPLES") or "15")
_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=_CHECKS)
#: For tests where one example is a whole conversation turn over a new connection (seconds).
FUZZ_SLOW = settings(max_examples=max(3, EXAMPLES // 4), deadline=None, suppress_health_check=_CHECKS)

CJK = re.compile(r"[\u4e00-\u9fff]")

#: Characters that have broken text handling somewhere: RTL overrides, zero-width and
#: joiners, BOM, combining marks, emoji with modifiers, full-width forms, NUL and C1 controls.
NASTY = ["\u202e", "\u202d", "\u200b", "\u200d", "\ufeff", "\u0301", "\U0001f600", "\U0001f44d\U0001f3fd",
         "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\uff11\uff12", "\x00", "\x07", "\x1b[31m", "\x85",
         "\u2028", "\r\n", "\t", "𠀀", "﷽", "ا", "עברית", "'; DROP TABLE customers;--", "<script>", "{{7*7}}",
         "%s%n", "../../etc/passwd", "260101000001", "13912345678", "我要退货", "订单", "人工"]

nasty_text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=20)), max_size=12).map("".join)
#: Very long strings without making Hypothesis generate them character by character.
long_text = st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=4), st.integers(500, 6000))
any_text = st.one_of(st.text(max_size=200), nasty_text, long_text)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10)

#: Lone surrogates cannot be UTF-8 encoded, but JSON can carry them as escapes.
surrogate_escape = st.integers(0xD800, 0xDFFF).map(lambda cp: f"\\u{cp:04x}")


def json_with_surrogates(prefix: dict, field: str, text: str, escapes: list[str]) -> bytes:
    """`prefix` plus `field` whose value is `text` with raw `\\udXXX` escapes appended."""
    body = json.dumps({**prefix, field: text}, ensure_ascii=True)
    assert body.endswith('"}')
    return (body[:-2] + "".join(escapes) + '"}').encode("ascii")


def readable_chinese(texts: list[str]) -> bool:
    return any(CJK.search(t or "") for t in texts)
