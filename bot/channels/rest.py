"""Rasa's REST channel (``/webhooks/rest/webhook``) with the per-sender rate limit.

The same channel name ("rest") and the same URL and answers as Rasa's own;
a sender over the limit (bot.ratelimit) is answered with a polite Chinese
line instead of running the model.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint

from bot.ratelimit import RateLimiter, limit_messages, shared_message_limiter


class LimitedRestInput(RestInput):
    def __init__(self, limiter: Optional[RateLimiter] = None) -> None:
        self.limiter = limiter or shared_message_limiter()

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> "LimitedRestInput":
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return super().blueprint(limit_messages(on_new_message, self.limiter))
