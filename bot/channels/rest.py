"""Rasa's REST channel (``/webhooks/rest/webhook``) with the per-sender rate
limit and a 400 for bodies it cannot use.

The same channel name ("rest") and the same URL and answers as Rasa's own.
What it adds:

* a sender over the limit (bot.ratelimit) is answered with a polite Chinese
  line instead of running the model;
* Rasa's own handler assumes a JSON object and answers anything else (``null``,
  a list, a number as the message) with a 500 and a traceback; here such a
  request is a 400 naming what is wrong, and nothing reaches the tracker.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint
from sanic.exceptions import InvalidUsage as BadRequest  # 400 in Sanic 21.12
from sanic.request import Request

from bot.ratelimit import RateLimiter, limit_messages, shared_message_limiter

MSG_NOT_AN_OBJECT = "请求格式不正确：请求体须是 JSON 对象，例如 {\"sender\": \"客户编号\", \"message\": \"文字\"}。"
MSG_SENDER = "请求格式不正确：sender 须是 1 到 128 个字符的字符串。"
MSG_MESSAGE = "请求格式不正确：message 须是字符串。"
MSG_METADATA = "请求格式不正确：metadata 须是 JSON 对象。"
MAX_SENDER_CHARS = 128


def _body(request: Request) -> dict[str, Any]:
    body = request.json  # invalid JSON is already a 400 from Sanic
    if not isinstance(body, dict):
        raise BadRequest(MSG_NOT_AN_OBJECT)
    return body


class LimitedRestInput(RestInput):
    def __init__(self, limiter: Optional[RateLimiter] = None) -> None:
        self.limiter = limiter or shared_message_limiter()

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> "LimitedRestInput":
        return cls()

    async def _extract_sender(self, req: Request) -> Optional[Text]:
        sender = _body(req).get("sender")
        if isinstance(sender, int) and not isinstance(sender, bool):
            sender = str(sender)
        if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS:
            raise BadRequest(MSG_SENDER)
        return sender

    def _extract_message(self, req: Request) -> Optional[Text]:
        message = _body(req).get("message", "")
        if not isinstance(message, str):
            raise BadRequest(MSG_MESSAGE)
        return message

    def get_metadata(self, request: Request) -> Optional[dict[str, Any]]:
        metadata = _body(request).get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BadRequest(MSG_METADATA)
        return metadata

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return super().blueprint(limit_messages(on_new_message, self.limiter, self.name()))
