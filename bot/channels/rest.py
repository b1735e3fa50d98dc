"""Rasa's REST channel, with a client message id so a retried message is answered once.

Why: behind a load balancer a Rasa server can die mid-request; the client
then gets a 502 and cannot know whether the message was processed.  Rasa
saves a turn's events in one transaction at the end of the turn
(`MessageProcessor.handle_message`), so a turn is either wholly in the
tracker or not at all.  A client that re-sends the same message with the same
`message_id` therefore gets:

* the stored answer, when the first attempt's turn was saved (the customer
  message is not processed or stored a second time);
* a normal processing, when it was not; the actions then see the same
  message id, so their CRM writes carry the same idempotency keys
  (actions/common.py) and a write the dead server already made is not made again.

The id is optional; without it the channel is the stock one.  The webhook
path and the input channel name stay `rest`, so bindings made for the stock
channel keep working.

The check runs before the conversation lock is taken: it is exact when the
first attempt's server is dead (the case a 502 means), not when two live
requests with one id race each other.
"""
from __future__ import annotations

import copy
import re
from asyncio import CancelledError
from typing import Any, Awaitable, Callable, Optional

import structlog
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

structlogger = structlog.get_logger()

MESSAGE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BOT_FIELDS = ("buttons", "image", "attachment", "custom", "elements", "quick_replies")


class IdempotentRestInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            body = request.json if isinstance(request.json, dict) else {}
            message_id = body.get("message_id")
            if message_id is not None and (not isinstance(message_id, str) or not MESSAGE_ID.match(message_id)):
                return response.json({"error": "message_id 无效：只能包含字母、数字和 . _ : -，最长 128 个字符"},
                                     status=400)
            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            if message_id:
                answered = await stored_answer(request.app.ctx.agent, sender_id, message_id)
                if answered is not None:
                    structlogger.info("rest.message.replayed", message_id=message_id)
                    return response.json(answered)
            collector = CollectingOutputChannel()
            try:
                await on_new_message(UserMessage(
                    text, collector, sender_id, input_channel=self._extract_input_channel(request),
                    metadata=self.get_metadata(request), message_id=message_id or None))
            except CancelledError:
                structlogger.error("rest.message.received.timeout", text=copy.deepcopy(text))
            except Exception:
                structlogger.exception("rest.message.received.failure", text=copy.deepcopy(text))
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
