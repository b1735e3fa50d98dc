"""Masking helpers and the log filter: logs never carry raw PII."""
from __future__ import annotations

import io
import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_adapter import CRM
from crm_adapter.masking import (
    PIIFilter,
    install_pii_filter,
    mask_address,
    mask_email,
    mask_name,
    mask_phone,
    mask_text,
)

MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


@pytest.mark.parametrize(
    "fn, value, expected",
    [
        (mask_phone, "13800138000", "138****8000"),
        (mask_phone, "138 0013 8000", "138****8000"),
        (mask_phone, "123", "****"),
        (mask_phone, None, ""),
        (mask_email, "li.na@example.com", "l***@example.com"),
        (mask_email, "broken", "***"),
        (mask_email, None, ""),
        (mask_name, "张伟", "张*"),
        (mask_name, "欧阳娜娜", "欧***"),
        (mask_name, "李", "李*"),
        (mask_address, "上海市浦东新区张江路100号3栋1202室", "上海市浦东新区****"),
        (mask_address, "浙江省杭州市西湖区文三路90号", "浙江省杭州市西湖区****"),
        (mask_address, "四川省成都市武侯区人民南路四段12号", "四川省成都市武侯区****"),
        (mask_address, "北京市朝阳区建国路88号", "北京市朝阳区****"),
        (mask_address, "张江路100号", "张江****"),
        (mask_address, "号", "****"),
    ],
)
def test_mask_helpers(fn, value, expected) -> None:
    assert fn(value) == expected


def test_mask_text_keeps_order_numbers_and_masks_pii() -> None:
    masked = mask_text("订单260101000001，手机13800138000，邮箱li.na@example.com，身份证110101199003071234")
    assert "260101000001" in masked
    assert "138****8000" in masked and "13800138000" not in masked
    assert "l***@example.com" in masked and "li.na@" not in masked
    assert "110101********1234" in masked


@settings(max_examples=200, database=None)
@given(st.text(alphabet="0123456789 ,.:@abc手机号", max_size=60), st.from_regex(r"\A1[3-9][0-9]{9}\Z"))
def test_mask_text_never_leaves_a_mobile(prefix: str, phone: str) -> None:
    masked = mask_text(f"{prefix} {phone} {prefix}")
    assert phone not in masked.split()


def _logger_with_buffer(name: str) -> tuple[logging.Logger, io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    install_pii_filter(logger)
    return logger, buffer


def test_filter_masks_messages_args_and_tracebacks() -> None:
    logger, buffer = _logger_with_buffer("kefu.test.pii")
    logger.info("customer %s wrote from %s", "13800138000", "li.na@example.com")
    try:
        raise ValueError("bad phone 13912345678")
    except ValueError:
        logger.exception("failed for %s", "13700001111")
    output = buffer.getvalue()
    assert not MOBILE.search(output), output
    assert "li.na@example.com" not in output
    assert "138****8000" in output and "139****5678" in output and "137****1111" in output
    assert "ValueError" in output  # the traceback is still there, masked


def test_install_pii_filter_is_idempotent() -> None:
    logger, _ = _logger_with_buffer("kefu.test.pii2")
    install_pii_filter(logger)
    assert sum(isinstance(f, PIIFilter) for f in logger.handlers[0].filters) == 1


def test_crm_logs_carry_no_raw_pii(crm: CRM, key, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    crm.verify_by_order("260101000021", "1111")
    crm.update_profile(3, "phone", "13911112222", key("profile"))
    crm.create_complaint(None, "quality", "打我电话13911112222", "rest", "s", key("c"),
                         contact_phone="13911112222")
    crm.record_interaction(3, "rest", "s", "note", "邮箱wf@example.com 电话13911112222")
    assert caplog.records, "expected the CRM to log its writes"
    assert "13911112222" not in caplog.text
    assert "wf@example.com" not in caplog.text
