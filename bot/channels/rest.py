"""Rasa's REST channel (``/webhooks/rest/webhook``), made safe to expose and to retry.

The same channel name ("rest"), URL and answers as Rasa's own.  What it adds:

* **Bad bodies are a 400, not a 500.**  Rasa's own handler assumes a JSON
  object and answers anything else (``null``, a list, a number as the
  message) with a 500 and a traceback; here such a request is a 400 naming
  what is wrong in Chinese, and nothing reaches the tracker.
* **A per-sender rate limit** (bot.ratelimit): a sender over it is answered
  with a polite Chinese line instead of running the model.
* **A client message id, so a retried message is answered once.**  Behind a
  load balancer a Rasa server can die mid-request; the client then gets a
  502 and cannot know whether the message was processed.  Rasa saves a
  turn's events in one transaction at the end of the turn
  (`MessageProcessor.handle_message`), so a turn is either wholly in the
  tracker or not at all.  A client that re-sends the same message with the
  same ``message_id`` gets the stored answer when the first attempt's turn
  was saved (the message is not processed or stored a second time), or a
  normal processing when it was not; the actions then see the same message
  id, so their CRM writes carry the same idempotency keys
  (actions/common.py) and a write the dead server already made is not made
  again.  The id is optional; without it the channel behaves as the stock
  one.  The check runs before the conversation lock is taken: it is exact
  when the first attempt's server is dead (the case a 502 means), not when
  two live requests with one id race each other.
"""
from __future__ import annotations

import re
from asyncio import CancelledError
from typing import Any, Awaitable, Callable, Optional, Text

import structlog
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.exceptions import InvalidUsage as BadRequest  # 400 in Sanic 21.12
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.ratelimit import RateLimiter, limit_messages, shared_message_limiter

structlogger = structlog.get_logger()

MSG_NOT_AN_OBJECT = "请求格式不正确：请求体须是 JSON 对象，例如 {\"sender\": \"客户编号\", \"message\": \"文字\"}。"
MSG_SENDER = "请求格式不正确：sender 须是 1 到 128 个字符的字符串。"
MSG_MESSAGE = "请求格式不正确：message 须是字符串。"
MSG_METADATA = "请求格式不正确：metadata 须是 JSON 对象。"
MSG_MESSAGE_ID = "请求格式不正确：message_id 只能包含字母、数字和 . _ : -，最长 128 个字符。"
MAX_SENDER_CHARS = 128
MESSAGE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BOT_FIELDS = ("buttons", "image", "attachment", "custom", "elements", "quick_replies")


def _body(request: Request) -> dict[str, Any]:
    body = request.json  # invalid JSON is already a 400 from Sanic
    if not isinstance(body, dict):
        raise BadRequest(MSG_NOT_AN_OBJECT)
    return body


def _message_id(request: Request) -> Optional[str]:
    message_id = _body(request).get("message_id")
    if message_id is None:
        return None
    if not isinstance(message_id, str) or not MESSAGE_ID.match(message_id):
        raise BadRequest(MSG_MESSAGE_ID)
    return message_id


class LimitedRestInput(RestInput):
    def __init__(self, limiter: Optional[RateLimiter] = None) -> None:
        self.limiter = limiter or shared_message_limiter()

    @classmethod
    def name(cls) -> str:
        return "rest"

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
        handle = limit_messages(on_new_message, self.limiter, self.name())
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            message_id = _message_id(request)
            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            metadata = self.get_metadata(request)
            if message_id:
                answered = await stored_answer(request.app.ctx.agent, sender_id, message_id)
                if answered is not None:
                    structlogger.info("rest.message.replayed", message_id=message_id)
                    return response.json(answered)
            collector = CollectingOutputChannel()
            try:
                await handle(UserMessage(text, collector, sender_id,
                                         input_channel=self._extract_input_channel(request),
                                         metadata=metadata, message_id=message_id or None))
            # Rasa's own handler logs the message text here; a customer's
            # words (an address, a name) do not belong in a log, so only
            # their length is (SECURITY.md "PII in logs").
            except CancelledError:
                structlogger.error("rest.message.received.timeout", chars=len(text))
            except Exception:
                structlogger.exception("rest.message.received.failure", chars=len(text))
            return response.json(collector.messages)

        return webhook


async def stored_answer(agent: Any, sender_id: str, message_id: str) -> Optional[list[dict[str, Any]]]:
    """The bot messages that followed the stored user message `message_id`, or None if not stored."""
    tracker = await agent.tracker_store.retrieve(sender_id)
    if tracker is None:
        return None
    answer: Optional[list[dict[str, Any]]] = None
    for event in tracker.events:
        kind = getattr(event, "type_name", "")
        if kind == "user":
            if answer is not None:
                break
            if getattr(event, "message_id", None) == message_id:
                answer = []
        elif kind == "bot" and answer is not None:
            message: dict[str, Any] = {"recipient_id": sender_id}
            if event.text:
                message["text"] = event.text
            for key in _BOT_FIELDS:
                if (event.data or {}).get(key):
                    message[key] = event.data[key]
            answer.append(message)
    return answer
