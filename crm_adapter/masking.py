"""Masking of personal data for display and for logs.

个人信息保护法 asks us to minimise what we expose: the bot confirms a phone
as ``138****8000`` rather than reading it back, views carry masked copies of
contact data, and no log line may hold a raw mobile number or email address.
`PIIFilter` enforces the last rule mechanically, because relying on every
``log.info`` call being careful does not survive a year of changes.
"""
from __future__ import annotations

import logging
import re
from typing import Optional

# ASCII digits only: ``\d`` would also match full-width digits and then the
# look-arounds would not see a longer number's boundary correctly.
_MOBILE_RE = re.compile(r"(?<![0-9])(1[3-9][0-9])([0-9]{4})([0-9]{4})(?![0-9])")
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# 18-character resident ID numbers (身份证号) — customers paste them into chat.
_ID_CARD_RE = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{5})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")

_ADDRESS_CUT_MARKERS = ("区", "县", "旗")


def mask_phone(phone: Optional[str]) -> str:
    """``13800138000`` -> ``138****8000``; anything short becomes ``****``."""
    digits = re.sub(r"[^0-9]", "", phone or "")
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "****" if digits else ""


def mask_email(email: Optional[str]) -> str:
    """``li.na@example.com`` -> ``l***@example.com``."""
    if not email:
        return ""
    local, sep, domain = email.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_name(name: Optional[str]) -> str:
    """``张伟`` -> ``张*``; ``欧阳娜娜`` -> ``欧***``."""
    if not name:
        return ""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1)


def mask_address(address: Optional[str]) -> str:
    """Keep the city and district, hide the street and door number.

    ``上海市浦东新区张江路100号`` -> ``上海市浦东新区****``.  The customer still
    recognises which address is meant; a screenshot gives nothing away.
    """
    if not address:
        return ""
    address = address.strip()
    cut = -1
    for marker in _ADDRESS_CUT_MARKERS:
        pos = address.find(marker)
        if 0 < pos < 14 and (cut < 0 or pos < cut):
            cut = pos
    if cut < 0:
        pos = address.find("市")
        # No district or city to keep: show at most a third of it.
        cut = pos if 0 < pos < 10 else min(len(address) // 3, 6) - 1
    return address[: max(cut + 1, 0)] + "****"


def mask_text(text: str) -> str:
    """Mask every mobile number, email address and ID number inside free text."""
    text = _MOBILE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _ID_CARD_RE.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    return text


class PIIFilter(logging.Filter):
    """Rewrites log records so that they carry no raw phone, email or ID number.

    The message is rendered (``msg % args``) and masked once, here, so that
    handlers downstream see only the masked text; tracebacks are rendered
    and masked too, since exception messages quote user input as often as
    log lines do.  The filter never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def install_pii_filter(logger: Optional[logging.Logger] = None) -> PIIFilter:
    """Attach one `PIIFilter` to every handler of ``logger`` (default: root).

    Handler filters see records from all child loggers, whereas a filter on a
    logger only sees records created on that very logger; processes (Rasa,
    action server, desk) call this once after configuring logging.
    """
    logger = logger or logging.getLogger()
    pii_filter = PIIFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, PIIFilter) for f in handler.filters):
            handler.addFilter(pii_filter)
    return pii_filter


def guard_logger(name: str) -> logging.Logger:
    """A module logger whose own records are masked whatever the handlers are."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, PIIFilter) for f in logger.filters):
        logger.addFilter(PIIFilter())
    return logger
