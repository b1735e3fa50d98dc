"""The only exceptions that leave `crm_adapter`.

Actions catch these three cases and speak a different sentence for each, so
the split matters more than the detail: "the system is down, try later"
(`CRMUnavailable`), "that isn't something I can find for you" (`NotFound`),
and "what you gave me won't do, here is why" (`InvalidInput`, whose Chinese
message is meant to be said to the customer as it is).
"""
from __future__ import annotations


class CRMError(Exception):
    """Base class: catching this catches everything the adapter raises."""


class CRMUnavailable(CRMError):
    """The database could not be reached or did not answer.

    The message never carries SQL parameters (engines run with
    ``hide_parameters=True``), so it is safe to log.
    """


class NotFound(CRMError):
    """The customer (or other subject addressed by id) does not exist."""


class InvalidInput(CRMError):
    """The request was refused; ``message_zh`` says why, in Chinese, to the customer."""

    def __init__(self, message_zh: str) -> None:
        super().__init__(message_zh)
        self.message_zh = message_zh


class IdempotencyConflict(InvalidInput):
    """An idempotency key was reused for a different kind of operation.

    It is a bug in the caller (keys are ``sender:message:what``), but it is an
    `InvalidInput` so that an action which only handles the documented errors
    still says something sensible instead of crashing.
    """

    def __init__(self, key_kind: str, requested_kind: str) -> None:
        super().__init__("这个请求刚才已经处理过了，如需办理其他业务请再说一次。")
        self.key_kind = key_kind
        self.requested_kind = requested_kind


__all__ = ["CRMError", "CRMUnavailable", "NotFound", "InvalidInput", "IdempotencyConflict"]
